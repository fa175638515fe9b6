"""Hashing and dropping personal columns: real sandbox over HTTP, real DuckDB and Postgres.

The strongest check is a search for every raw value of the sandbox in everything the load
leaves behind: each file of the pipeline folder (parquet files read back too, since they are
compressed), every table of every schema in the warehouse, dlt's state, and the captured logs.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import psycopg2
import pyarrow.parquet as pq
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from octopush_dlt.errors import OctopushPrivacyError
from octopush_dlt.privacy import hmac_hex
from octopush_dlt.runner import run_load
from octopush_provider.sandbox import ConversationStore
from tests.helpers import POSTGRES_URL, root_cause, sandbox_source

SECRET = "pepper-for-the-tests-7f3a"
PERSONAL = [
    "recipient_details__phone_number",
    "recipient_details__name",
    "agent_assigned_to",
    # messages
    "user_identifier",
    "user_identifiers__phone_number",
    "user_identifiers__email",
    "contact_name",
]


def _hmac(key: bytes, text: str) -> str:
    """HMAC-SHA256 by the standard library's other door: expectations never come from our code."""
    return hmac.new(key, text.encode("utf-8"), "sha256").hexdigest()


def test_the_pseudonym_is_the_keyed_hmac_of_rfc_4231_and_the_key_matters():
    # RFC 4231, test case 2: a known answer, computed by nobody here.
    assert hmac_hex(b"Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert hmac_hex(b"one secret", "+33612345678") != hmac_hex(b"another", "+33612345678")


def _raw_values(store: ConversationStore) -> set[str]:
    """Every personal value the sandbox holds: phone numbers, names, message texts."""
    values: set[str] = set()
    for row in store.snapshot():
        values |= set(row["recipient_details"].values())
        values.add(row["last_message"])
        if "agent_assigned_to" in row:
            values.add(row["agent_assigned_to"])
    return values


def _dump_warehouse(pipeline: dlt.Pipeline) -> str:
    """Every row of every table in every schema of the warehouse, as text."""
    with pipeline.sql_client() as client:
        tables = client.execute_sql(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('information_schema', 'pg_catalog')"
        )
        dumps = [
            repr(client.execute_sql(f'SELECT * FROM "{schema}"."{table}"'))
            for schema, table in tables
        ]
    assert any("conversations" in table for _, table in tables)
    return "\n".join(dumps)


def _dump_folder(folder: Path) -> str:
    """Every file's bytes (as latin-1 text), and the contents of every parquet file."""
    dumps = []
    for path in folder.rglob("*"):
        if path.is_file():
            dumps.append(path.read_bytes().decode("latin-1"))
            dumps.append(path.read_bytes().decode("utf-8", errors="replace"))
            if path.suffix == ".parquet":
                dumps.append(repr(pq.read_table(path).to_pylist()))
    return "\n".join(dumps)


def _leaks(haystack: str, needles: set[str]) -> list[str]:
    return sorted(needle for needle in needles if needle in haystack)


def _pseudonymised_load(sandbox: Any, pipeline: dlt.Pipeline, caplog: Any) -> None:
    with caplog.at_level(logging.DEBUG):
        run_load(
            pipeline,
            sandbox_source(
                sandbox,
                hash_columns=PERSONAL,
                drop_columns=["last_message", "text"],
                hash_secret=SECRET,
            ),
        )


def _assert_nothing_raw(sandbox: Any, pipeline: dlt.Pipeline, folder: Path, caplog: Any) -> None:
    raw = _raw_values(sandbox.store) | {SECRET}
    assert len(raw) > 100
    assert _leaks(_dump_warehouse(pipeline), raw) == []
    assert _leaks(_dump_folder(folder), raw) == []
    assert _leaks(json.dumps(pipeline.state, default=str), raw) == []
    assert _leaks(caplog.text, raw) == []


def test_hashed_columns_hold_the_hmac_of_the_values_and_nulls_stay_null(
    make_sandbox, make_pipeline
):
    sandbox = make_sandbox(conversations=120)
    pipeline = make_pipeline()

    run_load(pipeline, sandbox_source(sandbox, hash_columns=PERSONAL, hash_secret=SECRET))

    key = SECRET.encode()
    expected = {
        row["conversation_id"]: (
            _hmac(key, row["recipient_details"]["phone_number"]),
            _hmac(key, row["recipient_details"]["name"]),
            _hmac(key, row["agent_assigned_to"]) if "agent_assigned_to" in row else None,
            row["last_message"],
        )
        for row in sandbox.store.snapshot()
    }
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "SELECT conversation_id, recipient_details__phone_number, recipient_details__name, "
            "agent_assigned_to, last_message FROM conversations"
        )
        types = {name: kind for name, kind, *_ in client.execute_sql("DESCRIBE conversations")}
    assert {cid: tuple(values) for cid, *values in rows} == expected
    assert any(agent is None for _, _, _, agent, _ in rows)
    assert types["recipient_details__phone_number"] == "VARCHAR"


def test_no_raw_value_reaches_duckdb_the_pipeline_folder_or_the_logs(
    make_sandbox, make_pipeline, tmp_path, caplog
):
    sandbox = make_sandbox(conversations=150)
    pipeline = make_pipeline()

    _pseudonymised_load(sandbox, pipeline, caplog)
    sandbox.store.bump(5)
    sandbox.store.add_new(3)
    _pseudonymised_load(sandbox, pipeline, caplog)

    _assert_nothing_raw(sandbox, pipeline, tmp_path, caplog)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A database of its own, so that every schema in it is this test's; dropped afterwards."""
    name = f"octopush_privacy_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def test_no_raw_value_reaches_postgres(
    make_sandbox, make_pipeline, tmp_path, caplog, postgres_database
):
    sandbox = make_sandbox(conversations=150)
    pipeline = make_pipeline(
        "octopush_pg_privacy", destination=dlt.destinations.postgres(postgres_database)
    )

    _pseudonymised_load(sandbox, pipeline, caplog)

    _assert_nothing_raw(sandbox, pipeline, tmp_path, caplog)


def test_a_dropped_column_never_reaches_the_destination(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=30)
    pipeline = make_pipeline()

    run_load(pipeline, sandbox_source(sandbox, drop_columns=["last_message"]))

    with pipeline.sql_client() as client:
        columns = {name for name, *_ in client.execute_sql("DESCRIBE conversations")}
    assert "last_message" not in columns
    assert "recipient_details__phone_number" in columns
    assert "last_message" not in pipeline.default_schema.get_table_columns("conversations")


def test_a_different_secret_is_refused_unless_full_refresh(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=40)
    pipeline = make_pipeline()
    run_load(pipeline, sandbox_source(sandbox, hash_columns=PERSONAL, hash_secret=SECRET))

    with pytest.raises(PipelineStepFailed) as failed:
        run_load(pipeline, sandbox_source(sandbox, hash_columns=PERSONAL, hash_secret="other"))

    error = root_cause(failed.value)
    assert isinstance(error, OctopushPrivacyError)
    assert "hash_secret differs" in str(error)
    assert "full refresh" in str(error)
    assert SECRET not in str(error) and "other" not in str(error).replace("another", "")
    rotated = sandbox_source(sandbox, hash_columns=PERSONAL, hash_secret="other")
    run_load(pipeline, rotated, full_refresh=True)
    first = sandbox.store.snapshot()[0]
    with pipeline.sql_client() as client:
        (phone,) = client.execute_sql(
            "SELECT recipient_details__phone_number FROM conversations WHERE conversation_id = ?",
            first["conversation_id"],
        )[0]
    assert phone == _hmac(b"other", first["recipient_details"]["phone_number"])


def test_changing_the_hashed_columns_of_a_loaded_table_is_refused(make_sandbox, make_pipeline):
    sandbox = make_sandbox(conversations=40)
    pipeline = make_pipeline()
    run_load(pipeline, sandbox_source(sandbox))

    with pytest.raises(PipelineStepFailed) as failed:
        run_load(pipeline, sandbox_source(sandbox, hash_columns=PERSONAL, hash_secret=SECRET))

    message = str(root_cause(failed.value))
    assert "hash_columns was [], now ['agent_assigned_to'" in message
    assert "--full-refresh" in message


def test_hashing_without_a_secret_is_refused(make_sandbox):
    sandbox = make_sandbox(conversations=1)

    with pytest.raises(OctopushPrivacyError, match="SOURCES__OCTOPUSH__HASH_SECRET"):
        sandbox_source(sandbox, hash_columns=["recipient_details__name"], hash_secret=None)


def test_an_unknown_column_is_refused_with_the_columns_that_exist(make_sandbox):
    sandbox = make_sandbox(conversations=1)

    with pytest.raises(OctopushPrivacyError) as refused:
        sandbox_source(sandbox, drop_columns=["phone"], hash_secret=SECRET)

    message = str(refused.value)
    assert "no table has the column(s) phone" in message
    assert "conversations: conversation_id, last_user_channel, recipient_details__phone_number" in (
        message
    )


def test_the_key_and_cursor_cannot_be_hashed_or_dropped(make_sandbox):
    sandbox = make_sandbox(conversations=1)

    with pytest.raises(OctopushPrivacyError, match="conversation_id cannot be hashed or dropped"):
        sandbox_source(sandbox, hash_columns=["conversation_id"], hash_secret=SECRET)


def test_settings_come_from_dlt_config_and_secrets(
    make_sandbox, make_pipeline, monkeypatch, tmp_path
):
    monkeypatch.setenv("SOURCES__OCTOPUSH__HASH_SECRET", SECRET)
    monkeypatch.setenv("SOURCES__OCTOPUSH__HASH_COLUMNS", '["recipient_details__phone_number"]')
    monkeypatch.setenv("SOURCES__OCTOPUSH__DROP_COLUMNS", '["last_message"]')
    sandbox = make_sandbox(conversations=20)
    pipeline = make_pipeline()

    run_load(pipeline, sandbox_source(sandbox))

    with pipeline.sql_client() as client:
        phones = {
            row[0]
            for row in client.execute_sql(
                "SELECT recipient_details__phone_number FROM conversations"
            )
        }
        columns = {name for name, *_ in client.execute_sql("DESCRIBE conversations")}
    assert phones == {
        _hmac(SECRET.encode(), row["recipient_details"]["phone_number"])
        for row in sandbox.store.snapshot()
    }
    assert "last_message" not in columns
    # dlt's trace records resolved settings: the secret must not be among them.
    assert _leaks(_dump_folder(tmp_path) + _dump_warehouse(pipeline), {SECRET}) == []


def test_a_nested_object_landed_whole_and_a_type_variant_are_treated_like_their_columns(
    make_sandbox, make_pipeline
):
    sandbox = make_sandbox(conversations=20)
    first, second = (row["conversation_id"] for row in sandbox.store.snapshot()[:2])
    # Not an object: it lands whole, as JSON text, in a column of its own.
    sandbox.store.rewrite(first, {"recipient_details": "+33612345678 Camille Martin"})
    pipeline = make_pipeline()
    settings = {
        "resources": ["conversations"],
        "hash_columns": ["recipient_details__phone_number"],
        "drop_columns": ["last_message"],
        "hash_secret": SECRET,
    }

    run_load(pipeline, sandbox_source(sandbox, **settings))
    sandbox.store.rewrite(second, {"last_message": {"text": "Bonjour"}})
    sandbox.store.bump_ids([second])
    run_load(pipeline, sandbox_source(sandbox, **settings))

    dump = _dump_warehouse(pipeline)
    assert "+33612345678" not in dump and "Bonjour" not in dump
    with pipeline.sql_client() as client:
        columns = {name for name, *_ in client.execute_sql("DESCRIBE conversations")}
        (whole,) = client.execute_sql(
            "SELECT recipient_details FROM conversations WHERE conversation_id = ?", first
        )[0]
    assert not {name for name in columns if name.split("__")[0] == "last_message"}
    assert whole == _hmac(SECRET.encode(), "+33612345678 Camille Martin")
