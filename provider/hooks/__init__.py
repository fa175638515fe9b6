"""Airflow hooks of the Octopush provider; the hook lives in :mod:`provider.hooks.octopush`."""
