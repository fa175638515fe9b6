"""Setup errors end the task at once, in one line, and are not retried.

A missing or mistyped connection, a missing warehouse connection or a destination dlt does not
know cannot be mended by waiting: the example DAGs retry twice, five minutes apart, for what a
retry can mend, and these must not take that path. Each test keeps the retries on (with no
delay, so that a task that did retry would show it at once) and reads the task log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from octopush_provider.exceptions import OctopushConfigError
from octopush_provider.sandbox import SandboxServer
from tests.airflow.support import TASK_ID, run_dag
from tests.helpers import list_requests

pytestmark = pytest.mark.usefixtures("airflow_db")

DAG_ID = "octopush_conversations_to_duckdb"
RETRYING = {"retries": 2, "retry_delay": timedelta(0)}


def failed_once(dag_run: Any) -> str:
    """The load task's state, once it is known to have been tried only once."""
    (ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == TASK_ID]
    assert ti.try_number == 1, f"the task was tried {ti.try_number} times"
    state: str = ti.state
    return state


def error_lines(log: str) -> list[str]:
    """The lines of the log that tell the user what failed."""
    return [line for line in log.splitlines() if "Exception: Octopush load not started" in line]


def test_a_missing_connection_fails_at_once_in_one_line(
    duckdb_file: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run = run_dag(DAG_ID, **RETRYING)

    log = "".join(capfd.readouterr())
    assert failed_once(run) == "failed"
    (line,) = set(error_lines(log))
    assert "Airflow connection 'octopush_default' does not exist: create it" in line
    assert "AIRFLOW_CONN_OCTOPUSH_DEFAULT" in line
    assert "AirflowNotFoundException" not in log


def test_a_connection_of_another_type_fails_at_once(
    duckdb_file: Path, set_connection: Callable[..., None], capfd: pytest.CaptureFixture[str]
) -> None:
    set_connection("octopush_default", conn_type="http", host="https://example.com")

    run = run_dag(DAG_ID, **RETRYING)

    assert failed_once(run) == "failed"
    (line,) = set(error_lines("".join(capfd.readouterr())))
    assert "Airflow connection 'octopush_default' is of type 'http', not 'octopush'" in line


def test_a_missing_warehouse_connection_fails_at_once(
    sandbox: SandboxServer,
    point_octopush_at: Callable[[SandboxServer], None],
    capfd: pytest.CaptureFixture[str],
) -> None:
    point_octopush_at(sandbox)

    run = run_dag("octopush_conversations_to_postgres", **RETRYING)

    assert failed_once(run) == "failed"
    (line,) = set(error_lines("".join(capfd.readouterr())))
    assert "the warehouse connection 'octopush_postgres' (destination_conn_id) does not" in line
    assert "AIRFLOW_CONN_OCTOPUSH_POSTGRES" in line
    assert list_requests(sandbox) == []


def test_an_unknown_destination_is_named_in_one_line() -> None:
    from octopush_provider.operators.destinations import build_destination  # noqa: PLC0415

    with pytest.raises(OctopushConfigError) as raised:
        build_destination("nosuchdest", dataset_name="octopush")

    assert str(raised.value).startswith(
        "destination 'nosuchdest' is not a dlt destination: set the operator's destination"
    )
