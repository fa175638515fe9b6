"""Every hour, load new and changed Octopush conversations and their messages into Postgres.

Credentials come from two Airflow connections: ``octopush_default`` for the API and
``octopush_postgres`` (a Postgres connection; its schema field is the database) for the
warehouse. Rows land in the ``octopush`` schema unless ``OCTOPUSH_DATASET`` says otherwise.
Trigger a run with ``{"full_refresh": true}`` to drop the tables and cursor and load everything
again.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from octopush_provider.operators.octopush import OctopushToDestinationOperator

with DAG(
    dag_id="octopush_conversations_to_postgres",
    description="Octopush conversations and messages into Postgres, incrementally",
    schedule="@hourly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two loads of one dataset at once would race on its cursor
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={"full_refresh": Param(False, type="boolean", description="Reload everything")},
    tags=["octopush", "postgres"],
):
    OctopushToDestinationOperator(
        task_id="load_conversations",
        destination="postgres",
        destination_conn_id="octopush_postgres",
        dataset_name=os.environ.get("OCTOPUSH_DATASET", "octopush"),
        full_refresh="{{ params.full_refresh }}",
    )
