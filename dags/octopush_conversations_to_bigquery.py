"""Every hour, load new and changed Octopush conversations into BigQuery.

Credentials come from two Airflow connections: ``octopush_default`` for the API and
``google_cloud_default`` (a Google Cloud connection with a service-account key in
``keyfile_dict`` or ``key_path``, or none to use Application Default Credentials, and the
``project``) for the warehouse. Rows land in the ``octopush`` dataset unless
``OCTOPUSH_DATASET`` says otherwise, partitioned by day of ``last_message_at``. Trigger a run with
``{"full_refresh": true}`` to drop the table and cursor and load everything again.
Once a week (and on a run triggered with ``{"detect_deletes": true}``) the run reads every page
and flags the conversations deleted at the source (``_octopush_deleted_at``).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from octopush_provider.operators.octopush import (
    WEEKLY_DELETE_CHECK,
    OctopushToDestinationOperator,
)

with DAG(
    dag_id="octopush_conversations_to_bigquery",
    description="Octopush conversations into BigQuery, incrementally",
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
    tags=["octopush", "bigquery"],
):
    OctopushToDestinationOperator(
        task_id="load_conversations",
        destination="bigquery",
        destination_conn_id="google_cloud_default",
        dataset_name=os.environ.get("OCTOPUSH_DATASET", "octopush"),
        full_refresh="{{ params.full_refresh }}",
        detect_deletes=WEEKLY_DELETE_CHECK,  # and on Sundays, 03:00 UTC
    )
