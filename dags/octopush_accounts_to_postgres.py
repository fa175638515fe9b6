"""### Several Octopush accounts into Postgres

Every hour, loads new and changed conversations of several Octopush accounts into Postgres,
incrementally, with one mapped task per account: an account that fails or is slow leaves the
others' data and cursors alone.

**Credentials**: one Octopush connection per account (default: `octopush_default` alone), listed
as a JSON list of connection ids in the `octopush_accounts` Variable, e.g.
`["octopush_acme", "octopush_globex"]`; and the `octopush_postgres` connection (type Postgres;
its Database field names the database).

**Where the data lands**: tables `conversations` and `messages` in a schema per account,
`<OCTOPUSH_DATASET>_<account>`: the connection id without its `octopush_` prefix, after
`octopush` (or `$OCTOPUSH_DATASET`); `octopush_acme` lands in `octopush_acme.conversations`.
Each schema keeps its own cursor, so conversation ids two accounts share never meet.

**Params**: `accounts` (default empty: the Variable's list), connection ids to load in this
run; `full_refresh` (default false), `{"full_refresh": true}` drops every listed account's
table and cursor, then loads everything again.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, Variable, task

from octopush_provider.exceptions import OctopushConfigError
from octopush_provider.operators.octopush import (
    OctopushToDestinationOperator,
    full_refresh_param,
)

ACCOUNTS_VARIABLE = "octopush_accounts"
DATASET_PREFIX = os.environ.get("OCTOPUSH_DATASET", "octopush")
# Mapped tasks are created at run time, but Airflow learns a task's outlets when it parses the
# DAG: every account's load updates this one asset, with the account's summary (its dataset
# name included) as the event's extra.
ACCOUNTS_ASSET = Asset(uri=f"x-dlt://postgres/{DATASET_PREFIX}_accounts/conversations")


def dataset_for(conn_id: str) -> str:
    """The dataset of one account: the prefix, then the connection id without ``octopush_``."""
    account = re.sub(r"[^a-z0-9_]", "_", conn_id.lower()).removeprefix("octopush_")
    return f"{DATASET_PREFIX}_{account}"


with DAG(
    dag_id="octopush_accounts_to_postgres",
    description="Several Octopush accounts into Postgres, a dataset per account",
    schedule="@hourly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two runs would race on each account's cursor
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        "accounts": Param(
            None,
            type=["null", "array"],
            description=f"Connection ids to load; empty for the {ACCOUNTS_VARIABLE!r} Variable",
        ),
        "full_refresh": full_refresh_param(),
    },
    doc_md=__doc__,
    tags=["octopush", "postgres"],
):

    @task
    def accounts(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """One set of operator arguments per account to load (Airflow passes ``params``)."""
        conn_ids = (params or {}).get("accounts") or Variable.get(
            ACCOUNTS_VARIABLE, default=["octopush_default"], deserialize_json=True
        )
        if not isinstance(conn_ids, list) or not all(
            isinstance(conn_id, str) and conn_id for conn_id in conn_ids
        ):
            raise OctopushConfigError(
                f"the {ACCOUNTS_VARIABLE!r} Variable (or the 'accounts' param) must be a JSON "
                f"list of Octopush connection ids, got {conn_ids!r}"
            )
        datasets = [dataset_for(conn_id) for conn_id in conn_ids]
        if len(set(datasets)) != len(datasets):
            raise OctopushConfigError(
                f"accounts {conn_ids!r} would share a dataset ({datasets}): list each once"
            )
        return [
            {"octopush_conn_id": conn_id, "dataset_name": dataset}
            for conn_id, dataset in zip(conn_ids, datasets, strict=True)
        ]

    OctopushToDestinationOperator.partial(
        task_id="load_account",
        destination="postgres",
        destination_conn_id="octopush_postgres",
        full_refresh="{{ params.full_refresh }}",
        outlets=[ACCOUNTS_ASSET],
        # A slow account must not hold the next hourly run of the others for long.
        execution_timeout=timedelta(minutes=50),
        max_active_tis_per_dagrun=4,
    ).expand_kwargs(accounts())
