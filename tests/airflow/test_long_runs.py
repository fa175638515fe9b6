"""Long runs behave: a killed or timed-out load stops reading and moves no cursor.

Airflow kills a task by sending its process SIGTERM, whose handler calls the operator's
``on_kill``; ``execution_timeout`` raises in the task and calls ``on_kill`` too. Under
``dag.test()`` the task runs in this process, so the sandbox sends the signal itself, in the
middle of a read, exactly when a chosen request arrives.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import dlt
import pytest

from octopush_provider.sandbox import SandboxServer
from tests.airflow.support import restored_pipeline, return_value, run_dag
from tests.helpers import expected_table, loaded_table

pytestmark = pytest.mark.usefixtures("airflow_db")

DAG_ID = "octopush_conversations_to_duckdb"
PER_PAGE = 10
CONCURRENCY = 2


@pytest.fixture
def keep_sigterm_handler() -> Iterator[None]:
    """The task runner installs its SIGTERM handler in this process: put pytest's back."""
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


@pytest.fixture
def warehouse(
    make_sandbox: Callable[..., SandboxServer],
    point_octopush_at: Callable[..., None],
    tmp_path: Path,
    duckdb_file: Path,
) -> tuple[SandboxServer, Callable[[], dict[str, object]]]:
    """A sandbox read in pages of 10, and a reader of the DuckDB table a fresh worker sees."""
    sandbox = make_sandbox(conversations=200)
    point_octopush_at(sandbox, per_page=PER_PAGE, concurrency=CONCURRENCY)
    reads = iter(range(100))

    def table() -> dict[str, object]:
        pipeline = restored_pipeline(
            dlt.destinations.duckdb(str(duckdb_file)),
            dataset_name="octopush",
            workdir=tmp_path / f"worker-{next(reads)}",
        )
        return {"rows": loaded_table(pipeline), "state": pipeline.state["sources"]}

    return sandbox, table


def load_then_change(sandbox: SandboxServer, table: Callable[[], dict[str, object]]) -> object:
    """A first complete load, then 100 new conversations: the next read is 11 pages long."""
    assert run_dag(DAG_ID).state == "success"
    before = table()
    assert before["rows"] == expected_table(sandbox.store)
    sandbox.store.add_new(100)
    sandbox.clear_requests()
    return before


@pytest.mark.usefixtures("keep_sigterm_handler")
def test_a_task_killed_mid_read_stops_reading_and_keeps_the_last_cursor(warehouse) -> None:
    sandbox, table = warehouse
    before = load_then_change(sandbox, table)
    sandbox.before_request(3, lambda _store: os.kill(os.getpid(), signal.SIGTERM))

    killed = run_dag(DAG_ID)

    assert killed.state == "failed"
    killed_requests = len(sandbox.requests)
    assert table() == before

    sandbox.clear_requests()
    after = run_dag(DAG_ID)
    assert after.state == "success"
    # The prefetching threads may send a request or two before the signal handler runs, never
    # the rest of the read that the next run makes.
    assert killed_requests < len(sandbox.requests)
    assert return_value(after)["new"] == 100
    assert table()["rows"] == expected_table(sandbox.store)


def test_a_run_past_its_execution_timeout_fails_and_the_next_run_is_exact(warehouse) -> None:
    sandbox, table = warehouse
    before = load_then_change(sandbox, table)
    sandbox.add_fault("slow", page=3, delay=20.0)

    timed_out = run_dag(DAG_ID, execution_timeout=timedelta(seconds=2))

    assert timed_out.state == "failed"
    timed_out_requests = len(sandbox.requests)
    assert table() == before

    sandbox.clear_faults()
    sandbox.clear_requests()
    after = run_dag(DAG_ID)
    assert after.state == "success"
    assert timed_out_requests < len(sandbox.requests)
    assert return_value(after)["new"] == 100
    assert table()["rows"] == expected_table(sandbox.store)
