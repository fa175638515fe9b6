"""Airflow hooks of the Octopush provider: :mod:`octopush_provider.hooks.octopush`."""
