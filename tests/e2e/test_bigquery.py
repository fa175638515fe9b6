"""Loads into BigQuery, as far as a local emulator can stand for it (tests/bigquery_emulator.py).

Each load goes through the runner into bqemulator, BigQuery's REST API over DuckDB, started by
the tests. What lands there is compared with the sandbox and with the DuckDB load of the same
sandbox account. What an emulator cannot show (Google's gzip uploads, IAM, quotas, GoogleSQL's
strictness, GCS staging, partitions pruned by a real query) is in docs/dlt-source.md, "Against a
BigQuery emulator".
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import pytest

from octopush_dlt.runner import run_load
from octopush_provider.sandbox import SandboxServer
from tests.bigquery_emulator import BigQueryEmulator
from tests.e2e.test_privacy import PERSONAL, SECRET, _dump_folder, _leaks, _raw_values
from tests.helpers import (
    expected_messages,
    expected_table,
    list_requests,
    loaded_messages,
    loaded_table,
    sandbox_source,
)

pytestmark = pytest.mark.bigquery

KEYS = {"conversations": "conversation_id", "messages": "message_id"}


def bigquery_pipeline(
    emulator: BigQueryEmulator, dataset: str, workdir: Path, name: str = "octopush_bq"
) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=name,
        destination=emulator.destination(),
        dataset_name=dataset,
        pipelines_dir=str(workdir),
    )


def _comparable(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def table_rows(pipeline: dlt.Pipeline, table: str) -> dict[str, dict[str, Any]]:
    """Every row of ``table`` keyed by its id, every column but dlt's own, instants in UTC."""
    with (
        pipeline.sql_client() as client,
        client.execute_query(f"SELECT * FROM {client.make_qualified_table_name(table)}") as cursor,
    ):
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return {
        row[KEYS[table]]: {
            name: _comparable(value) for name, value in row.items() if not name.startswith("_dlt_")
        }
        for row in rows
    }


def assert_same_tables(bigquery: dlt.Pipeline, duckdb: dlt.Pipeline) -> None:
    for table in KEYS:
        assert table_rows(bigquery, table) == table_rows(duckdb, table), table


def test_first_load_and_merge_land_what_duckdb_holds(
    emulated_bigquery, bigquery_dataset, make_sandbox, make_pipeline, tmp_path
):
    sandbox = make_sandbox(conversations=300, offsets="mixed")
    bigquery = bigquery_pipeline(emulated_bigquery, bigquery_dataset, tmp_path / "bq")
    duckdb = make_pipeline()

    first = run_load(bigquery, sandbox_source(sandbox))
    run_load(duckdb, sandbox_source(sandbox))

    assert first.new == 300
    assert first.messages is not None and first.messages.disagreeing == 0
    assert loaded_table(bigquery) == expected_table(sandbox.store)
    assert loaded_messages(bigquery) == expected_messages(sandbox.store)
    assert_same_tables(bigquery, duckdb)

    sandbox.store.add_new(10)
    sandbox.store.bump(10)
    sandbox.clear_requests()
    second = run_load(bigquery, sandbox_source(sandbox))
    run_load(duckdb, sandbox_source(sandbox))

    assert (second.new, second.updated) == (10, 10)
    assert loaded_table(bigquery) == expected_table(sandbox.store)
    assert loaded_messages(bigquery) == expected_messages(sandbox.store)
    assert_same_tables(bigquery, duckdb)


def test_a_fresh_pipeline_folder_continues_from_the_state_kept_in_bigquery(
    emulated_bigquery, bigquery_dataset, make_sandbox, tmp_path
):
    sandbox = make_sandbox(conversations=250)
    run_load(
        bigquery_pipeline(emulated_bigquery, bigquery_dataset, tmp_path / "first-worker"),
        sandbox_source(sandbox),
    )
    sandbox.store.add_new(3)
    sandbox.clear_requests()

    fresh = bigquery_pipeline(emulated_bigquery, bigquery_dataset, tmp_path / "second-worker")
    summary = run_load(fresh, sandbox_source(sandbox))

    assert (summary.new, summary.updated) == (3, 0)
    # Page 1, and the next one, proving the order across the stop: the cursor came back.
    assert [record.page for record in list_requests(sandbox)] == [1, 2]
    assert loaded_table(fresh) == expected_table(sandbox.store)
    assert loaded_messages(fresh) == expected_messages(sandbox.store)


def test_a_full_refresh_reloads_everything(
    emulated_bigquery, bigquery_dataset, make_sandbox, tmp_path
):
    sandbox = make_sandbox(conversations=120)
    pipeline = bigquery_pipeline(emulated_bigquery, bigquery_dataset, tmp_path)
    run_load(pipeline, sandbox_source(sandbox))
    sandbox.store.add_new(2)

    summary = run_load(pipeline, sandbox_source(sandbox), full_refresh=True)

    assert (summary.conversations_loaded, summary.new) == (122, 122)
    assert loaded_table(pipeline) == expected_table(sandbox.store)
    assert loaded_messages(pipeline) == expected_messages(sandbox.store)


def _bigquery_dump(pipeline: dlt.Pipeline) -> str:
    """Every row of every table of the pipeline's datasets (its own and staging), as text."""
    with pipeline.sql_client() as client:
        bigquery = client.native_connection
        tables = [
            table
            for dataset in bigquery.list_datasets()
            if dataset.dataset_id.startswith(pipeline.dataset_name)
            for table in bigquery.list_tables(dataset.dataset_id)
        ]
        dumps = [
            repr(client.execute_sql(f"SELECT * FROM `{table.full_table_id.replace(':', '.')}`"))
            for table in tables
        ]
    assert any(table.table_id == "conversations" for table in tables)
    return "\n".join(dumps)


def test_no_raw_value_reaches_bigquery_and_hashes_match_duckdb(
    emulated_bigquery, bigquery_dataset, make_sandbox, make_pipeline, tmp_path, caplog
):
    sandbox = make_sandbox(conversations=150)
    pseudonymised = {
        "hash_columns": PERSONAL,
        "drop_columns": ["last_message", "text"],
        "hash_secret": SECRET,
    }
    bigquery = bigquery_pipeline(emulated_bigquery, bigquery_dataset, tmp_path / "bq")
    duckdb = make_pipeline()

    with caplog.at_level(logging.DEBUG):
        run_load(bigquery, sandbox_source(sandbox, **pseudonymised))
    run_load(duckdb, sandbox_source(sandbox, **pseudonymised))

    raw = _raw_values(sandbox.store) | {SECRET}
    assert len(raw) > 100
    assert _leaks(_bigquery_dump(bigquery), raw) == []
    assert _leaks(_dump_folder(tmp_path / "bq"), raw) == []
    assert _leaks(json.dumps(bigquery.state, default=str), raw) == []
    assert _leaks(caplog.text, raw) == []
    rows = table_rows(bigquery, "conversations")
    assert "last_message" not in next(iter(rows.values()))
    assert_same_tables(bigquery, duckdb)


def _deleted_at(pipeline: dlt.Pipeline) -> dict[str, datetime | None]:
    return {
        cid: row["_octopush_deleted_at"]
        for cid, row in table_rows(pipeline, "conversations").items()
    }


def _delete_some(sandbox: SandboxServer) -> list[str]:
    """Delete one recent and the three oldest conversations of the sandbox."""
    snapshot = sandbox.store.snapshot()
    ids = [row["conversation_id"] for row in [snapshot[2], *snapshot[-3:]]]
    return sandbox.store.delete(ids)


def test_deleted_conversations_are_flagged_in_bigquery(
    fresh_bigquery, bigquery_dataset, make_sandbox, tmp_path
):
    sandbox = make_sandbox(conversations=150)
    bigquery = bigquery_pipeline(fresh_bigquery, bigquery_dataset, tmp_path)
    run_load(bigquery, sandbox_source(sandbox))
    held = {row["conversation_id"] for row in sandbox.store.snapshot()}
    deleted = _delete_some(sandbox)
    before = datetime.now(UTC)

    summary = run_load(bigquery, sandbox_source(sandbox, detect_deletes=True))

    flags = _deleted_at(bigquery)
    assert set(flags) == held
    assert {cid for cid, flag in flags.items() if flag is not None} == set(deleted)
    assert all(before <= flags[cid] <= datetime.now(UTC) for cid in deleted)  # type: ignore[operator]
    assert summary.deletions is not None and summary.deletions["marked"] == 4


def test_hard_deletions_remove_the_conversations_and_their_messages_from_bigquery(
    fresh_bigquery, bigquery_dataset, make_sandbox, tmp_path
):
    sandbox = make_sandbox(conversations=150)
    bigquery = bigquery_pipeline(fresh_bigquery, bigquery_dataset, tmp_path)
    run_load(bigquery, sandbox_source(sandbox))
    deleted = _delete_some(sandbox)

    run_load(bigquery, sandbox_source(sandbox, detect_deletes=True, deletes_mode="hard"))

    assert loaded_table(bigquery) == expected_table(sandbox.store)
    assert loaded_messages(bigquery) == expected_messages(sandbox.store)
    parents = {row["conversation_id"] for row in table_rows(bigquery, "messages").values()}
    assert parents and not parents & set(deleted)


def test_the_conversations_table_is_created_partitioned_and_clustered(
    emulated_bigquery, bigquery_dataset, make_sandbox, tmp_path
):
    """The CREATE TABLE BigQuery received, read back from the emulator's job history.

    The emulator accepts the clauses but keeps no partitioning or clustering in the table's
    metadata, so what is checked is what dlt sent, not what BigQuery made of it.
    """
    sandbox = make_sandbox(conversations=50)
    pipeline = bigquery_pipeline(emulated_bigquery, bigquery_dataset, tmp_path)

    run_load(pipeline, sandbox_source(sandbox))

    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("conversations")
        jobs = client.native_connection.list_jobs()
        queries = [job.query for job in jobs if job.job_type == "query"]
    (create,) = [
        statement
        for query in queries
        for statement in query.split(";")
        if statement.strip().startswith(f"CREATE TABLE {table}")
    ]
    assert "PARTITION BY DATE(`last_message_at`)" in create
    assert "CLUSTER BY `conversation_id`" in create
    assert "`last_message_at` TIMESTAMP  NOT NULL" in create
