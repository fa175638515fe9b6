"""Whether a load may append instead of merging.

A merge stages the load and then deletes and inserts by primary key, which pays only when the
table holds rows already. When the table is known to be absent at the start of a run (a first
load, or a full refresh that drops it), and the read served no conversation twice, appending
lands the same rows for less. Moving data makes a read serve a conversation twice (a row
shifted onto the next page, or a pass read again in order); the load then merges as usual, and
the merge keeps the newest version of each.

"Known" means: a refresh of this run drops the table, or neither the pipeline's schema nor the
destination has it. The destination is asked once, only when the schema does not know the
table, and if it cannot answer the load merges: a merge is right whatever the table holds.
"""

from __future__ import annotations

import logging

import dlt
from dlt.common.storages.load_package import load_package_state
from dlt.destinations.job_client_impl import SqlJobClientBase

logger = logging.getLogger(__name__)


def table_is_absent(table_name: str) -> bool:
    """Whether ``table_name`` holds no rows before this load; call from inside a resource."""
    dropped = load_package_state()["state"].get("dropped_tables", [])
    if any(table["name"] == table_name for table in dropped):
        return True
    if table_name in dlt.current.source_schema().tables:
        return False
    try:
        with dlt.current.pipeline().destination_client() as client:
            if not isinstance(client, SqlJobClientBase):
                return False
            return not any(columns for _, columns in client.get_storage_tables([table_name]))
    except Exception as error:
        logger.info("Could not tell whether %r exists (%s): merging", table_name, error)
        return False
