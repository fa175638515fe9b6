"""Every hour, load new and changed Octopush conversations into a local DuckDB file.

Credentials come from the ``octopush_default`` Airflow connection. The DuckDB file is dlt's
``DESTINATION__DUCKDB__CREDENTIALS`` when set, else
``$AIRFLOW_HOME/data/octopush_warehouse.duckdb``; the schema is ``octopush`` unless
``OCTOPUSH_DATASET`` says otherwise. Trigger a run with
``{"full_refresh": true}`` to drop the table and cursor and load everything again.
Once a week (and on a run triggered with ``{"detect_deletes": true}``) the run reads every page
and flags the conversations deleted at the source (``_octopush_deleted_at``).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param

from octopush_provider.operators.octopush import (
    WEEKLY_DELETE_CHECK,
    OctopushToDestinationOperator,
)

DUCKDB_PATH = os.environ.get(
    "DESTINATION__DUCKDB__CREDENTIALS",
    str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow"), "data", "octopush_warehouse.duckdb")),
)

with DAG(
    dag_id="octopush_conversations_to_duckdb",
    description="Octopush conversations into DuckDB, incrementally",
    schedule="@hourly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two loads of one dataset at once would race on its cursor
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        "full_refresh": Param(False, type="boolean", description="Reload everything"),
        "detect_deletes": Param(
            False, type="boolean", description="Flag conversations deleted at the source"
        ),
    },
    tags=["octopush", "duckdb"],
):
    OctopushToDestinationOperator(
        task_id="load_conversations",
        destination="duckdb",
        duckdb_path=DUCKDB_PATH,
        dataset_name=os.environ.get("OCTOPUSH_DATASET", "octopush"),
        full_refresh="{{ params.full_refresh }}",
        detect_deletes=WEEKLY_DELETE_CHECK,  # and on Sundays, 03:00 UTC
    )
