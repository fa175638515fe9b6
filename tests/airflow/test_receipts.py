"""Delivery receipts land through the operator, and its summary and task log say so."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import dlt
import pytest

from octopush_provider.sandbox import SandboxServer
from tests.airflow.support import restored_pipeline, return_value, run_dag
from tests.helpers import expected_messages, loaded_messages, requested_conversations, waiting

pytestmark = pytest.mark.usefixtures("airflow_db")

DAG = "octopush_conversations_to_duckdb"
HOURS = 3_600


def test_the_operator_lands_receipts_and_logs_what_moved(
    sandbox: SandboxServer,
    point_octopush_at: Callable[[SandboxServer], None],
    duckdb_file: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    point_octopush_at(sandbox)
    store = sandbox.store
    assert run_dag(DAG).state == "success"
    store.add_new(20)
    store.advance(HOURS)
    store.add_new(1)
    assert run_dag(DAG).state == "success"
    waits = waiting(store)
    store.advance(12 * HOURS)  # receipts arrive; the conversations do not move
    changed = store.add_new(1)
    sandbox.clear_requests()
    capfd.readouterr()

    summary = return_value(run_dag(DAG))

    log = "".join(capfd.readouterr())
    receipts = summary["messages"]["receipts"]
    assert Counter(requested_conversations(sandbox)) == Counter([*waits, *changed])
    assert receipts["statuses_moved"] > 0
    assert f"  receipts: {receipts['statuses_moved']} statuses moved; " in log
    pipeline = restored_pipeline(
        dlt.destinations.duckdb(str(duckdb_file)), dataset_name="octopush", workdir=tmp_path / "r"
    )
    assert loaded_messages(pipeline) == expected_messages(store)
