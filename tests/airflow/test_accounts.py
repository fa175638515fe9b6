"""Many accounts: the mapped DAG loads each Octopush account into a dataset of its own.

Two sandboxes play two accounts with different credentials and the same conversation ids (same
seed). When one account fails, the other's table is complete and the failing one's untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import psycopg2
import pytest

from octopush_provider.sandbox import SandboxServer
from tests.airflow.support import POSTGRES, POSTGRES_URL, asset_events, restored_pipeline, run_dag
from tests.helpers import expected_table, loaded_table

pytestmark = pytest.mark.usefixtures("airflow_db")

DAG_ID = "octopush_accounts_to_postgres"
ACCOUNTS = {"octopush_acme": "acme@example.com", "octopush_globex": "globex@example.com"}
POSTGRES_DESTINATION = dlt.destinations.postgres(POSTGRES_URL)


@pytest.fixture
def prefix(postgres_dataset: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The datasets' prefix; every dataset it starts is dropped after the test."""
    monkeypatch.setenv("OCTOPUSH_DATASET", postgres_dataset)
    yield postgres_dataset
    with psycopg2.connect(**POSTGRES) as conn, conn.cursor() as cursor:
        for account in ("acme", "globex"):
            for schema in (
                f"{postgres_dataset}_{account}",
                f"{postgres_dataset}_{account}_staging",
            ):
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    conn.close()


@pytest.fixture
def accounts(
    make_sandbox: Callable[..., SandboxServer],
    set_connection: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    prefix: str,
    postgres_connection: str,
) -> dict[str, SandboxServer]:
    """Two accounts, their connections, the Postgres connection and the accounts Variable."""
    sandboxes = {}
    for conn_id, login in ACCOUNTS.items():
        sandbox = make_sandbox(conversations=120, seed=3, api_login=login, api_key=f"{login}-key")
        set_connection(
            conn_id,
            conn_type="octopush",
            login=login,
            password=sandbox.api_key,
            host=sandbox.base_url,
        )
        sandboxes[conn_id] = sandbox
    monkeypatch.setenv("AIRFLOW_VAR_OCTOPUSH_ACCOUNTS", '["octopush_acme", "octopush_globex"]')
    return sandboxes


def table(prefix: str, account: str, workdir: Path) -> dict[str, Any]:
    pipeline = restored_pipeline(
        POSTGRES_DESTINATION, dataset_name=f"{prefix}_{account}", workdir=workdir
    )
    return loaded_table(pipeline)


def states(run: Any) -> dict[int, str]:
    """The mapped load tasks' states, by map index."""
    return {
        ti.map_index: ti.state for ti in run.get_task_instances() if ti.task_id == "load_account"
    }


def test_each_account_loads_into_its_own_dataset_with_its_own_cursor(
    accounts: dict[str, SandboxServer], prefix: str, tmp_path: Path
) -> None:
    acme, globex = accounts["octopush_acme"], accounts["octopush_globex"]
    assert {row["conversation_id"] for row in acme.store.snapshot()} == {
        row["conversation_id"] for row in globex.store.snapshot()
    }
    globex.store.add_new(7)

    run = run_dag(DAG_ID)

    assert run.state == "success"
    assert states(run) == {0: "success", 1: "success"}
    assert table(prefix, "acme", tmp_path / "a") == expected_table(acme.store)
    assert table(prefix, "globex", tmp_path / "g") == expected_table(globex.store)
    assert len(table(prefix, "globex", tmp_path / "g2")) == 127
    events = asset_events(run)
    assert sorted(extra["dataset_name"] for _, extra in events) == [
        f"{prefix}_acme",
        f"{prefix}_globex",
    ]


def test_a_failing_account_leaves_the_others_complete_and_its_own_untouched(
    accounts: dict[str, SandboxServer],
    set_connection: Callable[..., None],
    prefix: str,
    tmp_path: Path,
) -> None:
    acme, globex = accounts["octopush_acme"], accounts["octopush_globex"]
    assert run_dag(DAG_ID).state == "success"
    globex_before = table(prefix, "globex", tmp_path / "before")
    acme.store.add_new(4)
    globex.store.add_new(4)
    set_connection(
        "octopush_globex",
        conn_type="octopush",
        login=ACCOUNTS["octopush_globex"],
        password="a-revoked-key",
        host=globex.base_url,
    )

    run = run_dag(DAG_ID)

    assert states(run) == {0: "success", 1: "failed"}
    assert table(prefix, "acme", tmp_path / "a") == expected_table(acme.store)
    assert table(prefix, "globex", tmp_path / "g") == globex_before
    assert len(globex_before) == 120


def test_the_accounts_param_overrides_the_variable(
    accounts: dict[str, SandboxServer], prefix: str, tmp_path: Path
) -> None:
    run = run_dag(DAG_ID, conf={"accounts": ["octopush_globex"]})

    assert states(run) == {0: "success"}
    assert table(prefix, "globex", tmp_path / "g") == expected_table(
        accounts["octopush_globex"].store
    )


def test_an_accounts_variable_that_is_not_a_list_fails_naming_it(
    accounts: dict[str, SandboxServer],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_OCTOPUSH_ACCOUNTS", '"octopush_acme"')

    run = run_dag(DAG_ID)

    assert run.state == "failed"
    assert states(run) == {-1: "upstream_failed"}  # no account was loaded
    assert "'octopush_accounts' Variable (or the 'accounts' param) must be a JSON list" in "".join(
        capfd.readouterr()
    )
