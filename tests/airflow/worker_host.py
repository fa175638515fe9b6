"""Airflow's ``hostname_callable`` for the Celery test: each worker plays a host of its own.

Two workers on one machine share its FQDN, which Airflow records as the task instance's
hostname; the test gives each worker a name in ``OCTOPUSH_TEST_HOSTNAME`` instead.
"""

from __future__ import annotations

import os


def hostname() -> str:
    return os.environ["OCTOPUSH_TEST_HOSTNAME"]
