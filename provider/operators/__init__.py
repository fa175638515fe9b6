"""Airflow operators of the Octopush provider; the load operator is in :mod:`.octopush`."""
