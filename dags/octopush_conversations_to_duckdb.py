"""Every hour, load new and changed Octopush conversations and their messages into DuckDB.

Credentials come from the ``octopush_default`` Airflow connection. The DuckDB file is dlt's
``DESTINATION__DUCKDB__CREDENTIALS`` when set, else
``$AIRFLOW_HOME/data/octopush_warehouse.duckdb``; the schema is ``octopush`` unless
``OCTOPUSH_DATASET`` says otherwise. Trigger a run with
``{"full_refresh": true}`` to drop the tables and cursor and load everything again.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param

from octopush_provider.operators.octopush import OctopushToDestinationOperator

DUCKDB_PATH = os.environ.get(
    "DESTINATION__DUCKDB__CREDENTIALS",
    str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow"), "data", "octopush_warehouse.duckdb")),
)

with DAG(
    dag_id="octopush_conversations_to_duckdb",
    description="Octopush conversations and messages into DuckDB, incrementally",
    schedule="@hourly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two loads of one dataset at once would race on its cursor
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={"full_refresh": Param(False, type="boolean", description="Reload everything")},
    tags=["octopush", "duckdb"],
):
    OctopushToDestinationOperator(
        task_id="load_conversations",
        destination="duckdb",
        duckdb_path=DUCKDB_PATH,
        dataset_name=os.environ.get("OCTOPUSH_DATASET", "octopush"),
        full_refresh="{{ params.full_refresh }}",
    )
