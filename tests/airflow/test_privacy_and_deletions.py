"""Hashing, dropping and deletion detection through the operator, under real Airflow 3."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dlt
import pytest

from octopush_dlt.privacy import hmac_hex
from octopush_provider.sandbox import SandboxServer
from tests.airflow.support import restored_pipeline, return_value, run_dag

pytestmark = pytest.mark.usefixtures("airflow_db")


PRIVATE_DAG = """
import pendulum
from airflow.sdk import DAG

from octopush_provider.operators.octopush import OctopushToDestinationOperator

with DAG(
    dag_id="octopush_private_load",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
):
    OctopushToDestinationOperator(
        task_id="load_conversations",
        destination="duckdb",
        duckdb_path={duckdb_file!r},
        hash_columns=["recipient_details__phone_number", "recipient_details__name"],
        drop_columns=["last_message"],
    )
"""


def test_the_example_dag_flags_deleted_conversations_when_asked(
    sandbox: SandboxServer,
    point_octopush_at: Callable[..., None],
    tmp_path: Path,
    duckdb_file: Path,
) -> None:
    point_octopush_at(sandbox)
    assert run_dag("octopush_conversations_to_duckdb").state == "success"
    deleted = sandbox.store.delete(row["conversation_id"] for row in sandbox.store.snapshot()[-3:])

    run = run_dag("octopush_conversations_to_duckdb", conf={"detect_deletes": True})

    assert run.state == "success"
    assert return_value(run)["deletions"]["marked"] == 3
    pipeline = restored_pipeline(
        dlt.destinations.duckdb(str(duckdb_file)), dataset_name="octopush", workdir=tmp_path / "w"
    )
    with pipeline.sql_client() as client:
        flagged = client.execute_sql(
            "SELECT conversation_id FROM conversations WHERE _octopush_deleted_at IS NOT NULL"
        )
    assert {cid for (cid,) in flagged} == set(deleted)


def test_the_example_dag_checks_for_deletions_in_the_run_due_sunday_3am_utc(
    sandbox: SandboxServer,
    point_octopush_at: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "weekly.duckdb"))
    point_octopush_at(sandbox)
    sunday = datetime(2026, 11, 29, 3, tzinfo=UTC)
    assert run_dag("octopush_conversations_to_duckdb", run_after=sunday).state == "success"
    sandbox.store.delete(row["conversation_id"] for row in sandbox.store.snapshot()[-2:])

    monday = run_dag("octopush_conversations_to_duckdb", run_after=sunday + timedelta(days=1))
    sunday_after = run_dag("octopush_conversations_to_duckdb", run_after=sunday + timedelta(days=7))

    assert return_value(monday)["deletions"] is None
    assert return_value(sunday_after)["deletions"]["marked"] == 2


def test_the_operator_hashes_with_the_connection_secret_and_airflow_masks_it(
    sandbox: SandboxServer,
    point_octopush_at: Callable[..., None],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager  # noqa: PLC0415
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db  # noqa: PLC0415
    from airflow.sdk._shared.secrets_masker import redact, reset_secrets_masker  # noqa: PLC0415

    secret = f"hash-secret-{uuid.uuid4().hex}"
    point_octopush_at(sandbox, hash_secret=secret)
    duckdb_file = tmp_path / "private.duckdb"
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "private_load.py").write_text(PRIVATE_DAG.format(duckdb_file=str(duckdb_file)))
    bag = DagBag(dag_folder=dags)
    DagBundlesManager().sync_bundles_to_db()  # what the DAG processor would do
    sync_bag_to_db(bag, "dags-folder", None)
    dag = bag.dags["octopush_private_load"]
    reset_secrets_masker()

    run = dag.test()

    assert run.state == "success"
    log = "".join(capfd.readouterr())
    assert "Loading Octopush conversations" in log
    assert secret not in log
    assert secret not in json.dumps(return_value(run))
    # The task registered the extra with Airflow's masker: a log line carrying it shows ***.
    assert redact(f"secret: {secret}") == "secret: ***"
    pipeline = restored_pipeline(
        dlt.destinations.duckdb(str(duckdb_file)), dataset_name="octopush", workdir=tmp_path / "w"
    )
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "SELECT conversation_id, recipient_details__phone_number FROM conversations"
        )
        columns = {name for name, *_ in client.execute_sql("DESCRIBE conversations")}
    assert dict(rows) == {
        row["conversation_id"]: hmac_hex(secret.encode(), row["recipient_details"]["phone_number"])
        for row in sandbox.store.snapshot()
    }
    assert "last_message" not in columns
