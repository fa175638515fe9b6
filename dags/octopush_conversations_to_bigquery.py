"""### Octopush conversations into BigQuery

Every hour, loads new and changed Octopush conversations and their messages into BigQuery,
incrementally: each run reads only the pages newer than the cursor kept in the warehouse.

**Credentials**: the `octopush_default` connection (type Octopush: API login and API key) and
the `google_cloud_default` connection (type Google Cloud: a service-account key in
`keyfile_dict` or `key_path`, or neither to use Application Default Credentials, and the
`project`).

**Where the data lands**: tables `conversations` and `messages` in dataset `octopush` (or
`$OCTOPUSH_DATASET`) of that project, partitioned by day of `last_message_at`.

**Params**: `full_refresh` (default false). Trigger with `{"full_refresh": true}` to drop the
tables and the cursor, then load everything again. `detect_deletes` (default false; on by itself
in the run due Sunday at 03:00 UTC): read every page and flag the conversations deleted at the
source in `_octopush_deleted_at`.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from octopush_provider.operators.octopush import (
    WEEKLY_DELETE_CHECK,
    OctopushToDestinationOperator,
    detect_deletes_param,
    full_refresh_param,
)

with DAG(
    dag_id="octopush_conversations_to_bigquery",
    description="Octopush conversations and messages into BigQuery, incrementally",
    schedule="@hourly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two loads of one dataset at once would race on its cursor
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={"full_refresh": full_refresh_param(), "detect_deletes": detect_deletes_param()},
    doc_md=__doc__,
    tags=["octopush", "bigquery"],
):
    OctopushToDestinationOperator(
        task_id="load_conversations",
        destination="bigquery",
        destination_conn_id="google_cloud_default",
        dataset_name=os.environ.get("OCTOPUSH_DATASET", "octopush"),
        full_refresh="{{ params.full_refresh }}",
        detect_deletes=WEEKLY_DELETE_CHECK,
    )
