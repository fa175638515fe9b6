"""### Octopush conversations into DuckDB

Every hour, loads new and changed Octopush conversations and their messages into a local DuckDB
file, incrementally: each run reads only the pages newer than the cursor kept in the warehouse.

**Credentials**: the `octopush_default` connection (type Octopush: API login and API key).

**Where the data lands**: tables `conversations` and `messages` in schema `octopush` (or
`$OCTOPUSH_DATASET`) of the DuckDB file `$DESTINATION__DUCKDB__CREDENTIALS`, else
`$AIRFLOW_HOME/data/octopush_warehouse.duckdb`.

**Params**: `full_refresh` (default false). Trigger with `{"full_refresh": true}` to drop the
tables and the cursor, then load everything again. `detect_deletes` (default false; on by itself
in the run due Sunday at 03:00 UTC): read every page and flag the conversations deleted at the
source in `_octopush_deleted_at`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from octopush_provider.operators.octopush import (
    WEEKLY_DELETE_CHECK,
    OctopushToDestinationOperator,
    detect_deletes_param,
    full_refresh_param,
)

DUCKDB_PATH = os.environ.get(
    "DESTINATION__DUCKDB__CREDENTIALS",
    str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow"), "data", "octopush_warehouse.duckdb")),
)
DATASET = os.environ.get("OCTOPUSH_DATASET", "octopush")

with DAG(
    dag_id="octopush_conversations_to_duckdb",
    description="Octopush conversations and messages into DuckDB, incrementally",
    schedule="@hourly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two loads of one dataset at once would race on its cursor
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={"full_refresh": full_refresh_param(), "detect_deletes": detect_deletes_param()},
    doc_md=f"{__doc__}\nHere: schema `{DATASET}` of `{DUCKDB_PATH}`.\n",
    tags=["octopush", "duckdb"],
):
    OctopushToDestinationOperator(
        task_id="load_conversations",
        destination="duckdb",
        duckdb_path=DUCKDB_PATH,
        dataset_name=DATASET,
        full_refresh="{{ params.full_refresh }}",
        detect_deletes=WEEKLY_DELETE_CHECK,
    )
