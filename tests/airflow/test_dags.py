"""The example DAGs run under real Airflow 3 (``dag.test()`` on its metadata database).

Each DAG is parsed from ``dags/`` as the DAG processor would, runs against the sandbox over HTTP,
and is checked where a user would look: the warehouse table, the pipeline state a fresh worker
restores from the destination, XCom, the asset events and the task log.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
import psycopg2
import pytest

from octopush_dlt.progress import duration
from octopush_provider.conversations import to_utc
from octopush_provider.sandbox import DEFAULT_API_LOGIN, SandboxServer
from tests.airflow.support import (
    AIRFLOW_BIN,
    DAGS_FOLDER,
    POSTGRES,
    POSTGRES_URL,
    asset_events,
    restored_pipeline,
    return_value,
    run_dag,
)
from tests.bigquery_emulator import BigQueryEmulator
from tests.helpers import (
    expected_messages,
    expected_table,
    list_requests,
    loaded_messages,
    loaded_table,
)

pytestmark = pytest.mark.usefixtures("airflow_db")

SUMMARY_KEYS = {"conversations_loaded", "pages", "cursor", "load_id", "new", "updated"}


def newest_cursor(sandbox: SandboxServer) -> str:
    return max(to_utc(row["last_message_at"]) for row in sandbox.store.snapshot()).isoformat()


def check_two_runs(
    dag_id: str,
    sandbox: SandboxServer,
    destination: Any,
    *,
    dataset: str,
    workdir: Path,
    warehouse: str | None = None,
) -> None:
    """Run ``dag_id`` twice, changing the sandbox in between, and check what each run left.

    ``warehouse`` is how the asset URIs name the warehouse (the destination's name by default).
    """
    first = run_dag(dag_id)
    assert first.state == "success"
    summary = return_value(first)
    assert summary.keys() >= SUMMARY_KEYS
    assert (summary["conversations_loaded"], summary["new"]) == (250, 250)
    assert summary["cursor"] == newest_cursor(sandbox)
    pipeline = restored_pipeline(destination, dataset_name=dataset, workdir=workdir / "after-1")
    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert loaded_messages(pipeline) == expected_messages(sandbox.store)
    assert summary["messages"]["disagreeing"] == 0

    sandbox.store.add_new(5)
    sandbox.store.bump(3)
    sandbox.clear_requests()
    second = run_dag(dag_id)

    assert second.state == "success"
    summary = return_value(second)
    assert (summary["new"], summary["updated"], summary["pages"]) == (5, 3, 2)
    # Page 1 reaches the cursor; page 2 proves the order across it.
    assert [record.page for record in list_requests(sandbox)] == [1, 2]
    assert summary["cursor"] == newest_cursor(sandbox)
    pipeline = restored_pipeline(destination, dataset_name=dataset, workdir=workdir / "after-2")
    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert loaded_messages(pipeline) == expected_messages(sandbox.store)
    prefix = f"x-dlt://{warehouse or destination.destination_name}/{dataset}"
    events = dict(asset_events(second))
    assert events.keys() == {f"{prefix}/{table}" for table in ("conversations", "messages")}
    assert events[f"{prefix}/conversations"]["new"] == 5
    assert events[f"{prefix}/messages"] == {
        **summary["messages"],
        "load_id": summary["load_id"],
    }


def test_duckdb_dag_loads_everything_then_only_the_changes(
    sandbox: SandboxServer,
    point_octopush_at: Callable[[SandboxServer], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # A folder that does not exist yet: the operator creates it, DuckDB would not.
    duckdb_file = tmp_path / "warehouse" / "conversations.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(duckdb_file))
    point_octopush_at(sandbox)

    check_two_runs(
        "octopush_conversations_to_duckdb",
        sandbox,
        dlt.destinations.duckdb(str(duckdb_file)),
        dataset="octopush",
        workdir=tmp_path,
        # Two DuckDB files are two warehouses: the file is part of the asset.
        warehouse=f"duckdb{duckdb_file}",
    )


def test_postgres_dag_loads_everything_then_only_the_changes(
    sandbox: SandboxServer,
    point_octopush_at: Callable[[SandboxServer], None],
    postgres_connection: str,
    postgres_dataset: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    point_octopush_at(sandbox)
    monkeypatch.setenv("OCTOPUSH_DATASET", postgres_dataset)

    check_two_runs(
        "octopush_conversations_to_postgres",
        sandbox,
        dlt.destinations.postgres(POSTGRES_URL),
        dataset=postgres_dataset,
        workdir=tmp_path,
    )


@pytest.mark.bigquery
def test_bigquery_dag_loads_everything_then_only_the_changes(
    sandbox: SandboxServer,
    point_octopush_at: Callable[[SandboxServer], None],
    set_connection: Callable[..., None],
    emulated_bigquery: BigQueryEmulator,
    bigquery_dataset: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # A local emulator in place of BigQuery (tests/bigquery_emulator.py), reached the way a user
    # would point the DAG at one: the Google connection's anonymous switch and its project, and
    # BIGQUERY_EMULATOR_HOST in the workers' environment.
    point_octopush_at(sandbox)
    set_connection(
        "google_cloud_default",
        conn_type="google_cloud_platform",
        extra={"is_anonymous": True, "project": emulated_bigquery.project},
    )
    monkeypatch.setenv("OCTOPUSH_DATASET", bigquery_dataset)

    check_two_runs(
        "octopush_conversations_to_bigquery",
        sandbox,
        emulated_bigquery.destination(),
        dataset=bigquery_dataset,
        workdir=tmp_path,
    )


def test_a_run_with_full_refresh_reloads_everything(
    sandbox: SandboxServer,
    point_octopush_at: Callable[[SandboxServer], None],
    tmp_path: Path,
    duckdb_file: Path,
) -> None:
    point_octopush_at(sandbox)
    assert run_dag("octopush_conversations_to_duckdb").state == "success"
    sandbox.store.add_new(2)

    run = run_dag("octopush_conversations_to_duckdb", conf={"full_refresh": True})

    assert run.state == "success"
    summary = return_value(run)
    assert (summary["conversations_loaded"], summary["new"]) == (252, 252)
    pipeline = restored_pipeline(
        dlt.destinations.duckdb(str(duckdb_file)), dataset_name="octopush", workdir=tmp_path / "w"
    )
    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_api_key_is_masked_in_task_logs_and_absent_from_xcom(
    make_sandbox: Callable[..., SandboxServer],
    point_octopush_at: Callable[[SandboxServer], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow.sdk._shared.secrets_masker import redact, reset_secrets_masker  # noqa: PLC0415

    api_key = f"octopush-key-{uuid.uuid4().hex}"
    sandbox = make_sandbox(api_key=api_key)
    point_octopush_at(sandbox)
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "conversations.duckdb"))
    reset_secrets_masker()

    run = run_dag("octopush_conversations_to_duckdb")

    assert run.state == "success"
    log = "".join(capfd.readouterr())
    assert "Loading Octopush conversations and messages from connection 'octopush_default'" in log
    assert api_key not in log
    assert api_key not in json.dumps(return_value(run))
    assert api_key not in json.dumps(asset_events(run))
    # The task registered the connection's password with Airflow's secrets masker, so a log
    # line that ever carried the key would show *** instead.
    assert redact(f"api-key: {api_key}") == "api-key: ***"


def test_the_boolean_params_of_the_example_dags_are_not_marked_required() -> None:
    from airflow.dag_processing.dagbag import DagBag  # noqa: PLC0415

    bag = DagBag(dag_folder=DAGS_FOLDER)
    booleans = {
        (dag_id, name): param.schema["type"]
        for dag_id, dag in bag.dags.items()
        for name, param in dag.params.items()
        if "boolean" in param.schema.get("type", ())
    }

    # Airflow's trigger form marks a param required unless its type allows null.
    assert booleans.keys() >= {
        ("octopush_conversations_to_duckdb", "full_refresh"),
        ("octopush_conversations_to_duckdb", "detect_deletes"),
    }
    assert {name: "null" in types for name, types in booleans.items()} == dict.fromkeys(
        booleans, True
    )


def test_a_triggered_run_with_an_empty_boolean_param_treats_it_as_false(
    sandbox: SandboxServer, point_octopush_at: Callable[[SandboxServer], None], duckdb_file: Path
) -> None:
    point_octopush_at(sandbox)

    run = run_dag("octopush_conversations_to_duckdb", {"full_refresh": None})

    assert run.state == "success"
    assert return_value(run)["new"] == 250


@pytest.mark.parametrize(
    ("resources", "tables"),
    [(None, ["conversations", "messages"]), (["conversations"], ["conversations"])],
)
def test_the_operator_updates_one_asset_per_table_it_loads(resources, tables) -> None:
    from octopush_provider.operators.octopush import (  # noqa: PLC0415
        OctopushToDestinationOperator,
    )

    options = {} if resources is None else {"resources": resources}
    operator = OctopushToDestinationOperator(task_id="load", destination="duckdb", **options)

    assert [outlet.uri for outlet in operator.outlets] == [
        f"x-dlt://duckdb/octopush/{table}" for table in tables
    ]


def test_a_duckdb_asset_names_the_file() -> None:
    from octopush_provider.operators.octopush import (  # noqa: PLC0415
        OctopushToDestinationOperator,
    )

    operator = OctopushToDestinationOperator(
        task_id="load", destination="duckdb", duckdb_path="/data/my warehouse.duckdb"
    )

    assert [outlet.uri for outlet in operator.outlets] == [
        f"x-dlt://duckdb/data/my%20warehouse.duckdb/octopush/{table}"
        for table in ("conversations", "messages")
    ]


VARIABLE_DAG = """
import pendulum
from airflow.sdk import DAG

from octopush_provider.operators.octopush import OctopushToDestinationOperator

with DAG(dag_id="octopush_from_variable", schedule=None, start_date=pendulum.datetime(2025, 1, 1)):
    OctopushToDestinationOperator(
        task_id="load_conversations", destination="postgres", dataset_name={dataset!r}
    )
"""


def test_the_dlt_secrets_toml_variable_still_configures_the_destination(
    sandbox: SandboxServer, postgres_dataset: str, tmp_path: Path
) -> None:
    # A fresh process, as on a worker: dlt probes Airflow for its variable once per process. (That
    # its probe leaves no deprecation warning in the task log is checked in test_e2e.py, where a
    # real task runner writes the log.)
    (tmp_path / "dag.py").write_text(VARIABLE_DAG.format(dataset=postgres_dataset))
    credentials = POSTGRES_URL
    env = {name: value for name, value in os.environ.items() if not name.startswith("PROVIDERS__")}
    env |= {
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path),
        "AIRFLOW_VAR_DLT_SECRETS_TOML": f'[destination.postgres]\ncredentials = "{credentials}"\n',
        "AIRFLOW_CONN_OCTOPUSH_DEFAULT": json.dumps(
            {
                "conn_type": "octopush",
                "login": DEFAULT_API_LOGIN,
                "password": sandbox.api_key,
                "host": sandbox.base_url,
            }
        ),
    }

    result = subprocess.run(
        [str(AIRFLOW_BIN), "dags", "test", "octopush_from_variable"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "  conversations: 250 new, 0 updated, 0 unchanged" in log
    with psycopg2.connect(**POSTGRES) as conn, conn.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{postgres_dataset}".conversations')
        assert cursor.fetchone() == (250,)
    conn.close()


def test_a_connection_saved_by_the_form_with_port_0_loads(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # 0 is what the form's Port field asks for, so that Airflow 3.3.2's Test button works; the
    # metadata database keeps the 0 (an AIRFLOW_CONN_ variable or a URI would drop it).
    from airflow.models.connection import Connection  # noqa: PLC0415
    from airflow.utils.session import create_session  # noqa: PLC0415

    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "conversations.duckdb"))
    fields = {"login": DEFAULT_API_LOGIN, "password": sandbox.api_key, "host": sandbox.base_url}
    with create_session() as session:
        session.add(Connection(conn_id="octopush_default", conn_type="octopush", port=0, **fields))
    try:
        run = run_dag("octopush_conversations_to_duckdb")
    finally:
        with create_session() as session:
            session.query(Connection).filter_by(conn_id="octopush_default").delete()

    assert run.state == "success"
    assert return_value(run)["conversations_loaded"] == 250


@pytest.mark.usefixtures("duckdb_file")
def test_the_task_log_closes_with_a_summary_that_agrees_with_xcom(
    sandbox: SandboxServer,
    point_octopush_at: Callable[[SandboxServer], None],
    capfd: pytest.CaptureFixture[str],
) -> None:
    point_octopush_at(sandbox)
    assert run_dag("octopush_conversations_to_duckdb").state == "success"
    sandbox.store.add_new(5)
    sandbox.store.bump(3)
    capfd.readouterr()

    summary = return_value(run_dag("octopush_conversations_to_duckdb"))

    log = "".join(capfd.readouterr())
    messages = summary["messages"]
    assert (summary["new"], summary["updated"]) == (5, 3)
    for line in (
        f"loaded into duckdb:octopush in {duration(summary['duration_seconds'])} "
        f"(load id {summary['load_id']})",
        f"  conversations: 5 new, 3 updated, {summary['unchanged']} unchanged "
        "(docs/summary.md#conversations)",
        f"  list: 2 pages, {summary['requests']} requests",  # page 2 proves the order of 1
        f"  messages: {messages['messages_loaded']} from {messages['conversations_read']} "
        f"conversations ({messages['requests']} requests)",
        f"  cursor: {summary['cursor']}",
    ):
        assert line in log
    # The duration is the one the log's own clock shows, from the task's first line to its last.
    moments = {
        found[2]: datetime.fromisoformat(found[1])
        for found in re.finditer(r"^(\S+) \[info\s*\] (Loading|loaded) ", log, re.MULTILINE)
    }
    span = (moments["loaded"] - moments["Loading"]).total_seconds()
    assert span <= summary["duration_seconds"] < span + 1
