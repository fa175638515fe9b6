"""Small helpers shared by the tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.extract.source import DltSource

from octopush_dlt import octopush_source
from octopush_dlt.receipts import DEFAULT_WINDOW_SECONDS
from octopush_provider.conversations import to_utc
from octopush_provider.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_LOGIN,
    ConversationStore,
    RequestRecord,
    SandboxServer,
)
from octopush_provider.sandbox.server import LIST_PATH, MESSAGES_PATH

POSTGRES_URL = "postgresql://postgres:postgres@127.0.0.1:5432/test"  # trust auth: any password


def ids(rows: list[dict[str, Any]]) -> list[str]:
    """The conversation ids of rows, in order."""
    return [row["conversation_id"] for row in rows]


def expected_table(store: ConversationStore) -> dict[str, tuple[datetime, int]]:
    """What the warehouse must hold: each conversation's UTC cursor and message count."""
    return {
        row["conversation_id"]: (to_utc(row["last_message_at"]), row["number_of_messages"])
        for row in store.snapshot()
    }


def loaded_table(pipeline: dlt.Pipeline) -> dict[str, tuple[datetime, int]]:
    """The conversations table as loaded, keyed like :func:`expected_table`; no duplicates."""
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "SELECT conversation_id, last_message_at, number_of_messages "
            f"FROM {client.make_qualified_table_name('conversations')}"
        )
    table = {cid: (moment.astimezone(UTC), count) for cid, moment, count in rows}
    assert len(table) == len(rows), "a conversation was loaded twice"
    return table


def read_report(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The last run's read figures, as the source left them in the pipeline state."""
    state = pipeline.state["sources"]["octopush"]["resources"]["conversations"]
    report: dict[str, Any] = state["last_read"]
    return report


def sandbox_source(sandbox: SandboxServer, **options: Any) -> DltSource:
    """The dlt source reading from a sandbox with its demo credentials."""
    settings = {"api_login": DEFAULT_API_LOGIN, "api_key": DEFAULT_API_KEY}
    source: DltSource = octopush_source(**(settings | {"base_url": sandbox.base_url} | options))
    return source


def conversations_source(sandbox: SandboxServer, **options: Any) -> DltSource:
    """:func:`sandbox_source` loading only the conversations table, for the tests that pin it."""
    return sandbox_source(sandbox, resources=["conversations"], **options)


def list_requests(sandbox: SandboxServer) -> list[RequestRecord]:
    """The requests the sandbox received for the conversations list."""
    return [record for record in sandbox.requests if record.path.startswith(LIST_PATH)]


def message_requests(sandbox: SandboxServer) -> list[RequestRecord]:
    """The requests the sandbox received for messages."""
    return [record for record in sandbox.requests if record.path.startswith(MESSAGES_PATH)]


def requested_conversations(sandbox: SandboxServer) -> list[str]:
    """The conversation ids messages were asked for, without their ``cid_`` prefix."""
    return [
        record.query["conversation_id"].removeprefix("cid_") for record in message_requests(sandbox)
    ]


Message = tuple[str, str | None, str, datetime]


def expected_messages(store: ConversationStore) -> dict[str, Message]:
    """Every message the warehouse must hold: its conversation, status, text and UTC time."""
    return {
        message["message_id"]: (
            row["conversation_id"],
            message["delivery_status"],
            message["text"],
            to_utc(message["created_at"]),
        )
        for row in store.snapshot()
        for message in store.messages(row["conversation_id"]) or []
    }


def loaded_messages(pipeline: dlt.Pipeline) -> dict[str, Message]:
    """The messages table as loaded, keyed like :func:`expected_messages`; no duplicates."""
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "SELECT message_id, conversation_id, delivery_status, text, created_at "
            f"FROM {client.make_qualified_table_name('messages')}"
        )
    table = {mid: (cid, status, text, at.astimezone(UTC)) for mid, cid, status, text, at in rows}
    assert len(table) == len(rows), "a message was loaded twice"
    return table


def root_cause(error: BaseException) -> BaseException:
    """The first error of a chain: what dlt wraps in its step errors."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _utc(text: str) -> datetime:
    """An ISO 8601 instant in UTC, by the standard library alone (not the connector's parser)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def served(store: ConversationStore) -> dict[str, Any]:
    """What every warehouse must hold after a run, as the sandbox serves it."""
    conversations = {
        row["conversation_id"]: (_utc(row["last_message_at"]), row["number_of_messages"])
        for row in store.snapshot()
    }
    messages = {
        message["message_id"]: (cid, message["delivery_status"], _utc(message["created_at"]))
        for cid in conversations
        for message in store.messages(cid) or []
    }
    return {
        "conversations": conversations,
        "messages": messages,
        "cursor": max(moment for moment, _ in conversations.values()),
    }


def landed(database: Path, state: dict[str, Any]) -> dict[str, Any]:
    """What a pipeline's DuckDB file holds, in the shape of :func:`served`, and its cursor."""
    with duckdb.connect(str(database), read_only=True) as db:
        conversations = db.execute(
            "SELECT conversation_id, last_message_at, number_of_messages "
            "FROM octopush.conversations"
        ).fetchall()
        messages = db.execute(
            "SELECT message_id, conversation_id, delivery_status, created_at FROM octopush.messages"
        ).fetchall()
    conversations_state = state["sources"]["octopush"]["resources"]["conversations"]
    cursor = conversations_state["incremental"]["last_message_at"]["last_value"]
    return {
        "conversations": {cid: (at.astimezone(UTC), n) for cid, at, n in conversations},
        "messages": {mid: (cid, status, at.astimezone(UTC)) for mid, cid, status, at in messages},
        "rows": (len(conversations), len(messages)),  # a row landed twice shows here
        "cursor": _utc(cursor) if isinstance(cursor, str) else cursor.astimezone(UTC),
    }


RECEIPTS_WINDOW = timedelta(seconds=DEFAULT_WINDOW_SECONDS)


def waiting(
    store: ConversationStore, *, window: timedelta = RECEIPTS_WINDOW
) -> dict[str, datetime]:
    """The conversations holding an outbound message still ``sent``, sent within ``window`` of
    the newest last message: id to when the newest of those was sent."""
    newest = max(to_utc(row["last_message_at"]) for row in store.snapshot())
    found: dict[str, datetime] = {}
    for row in store.snapshot():
        sent = [
            to_utc(message["created_at"])
            for message in store.messages(row["conversation_id"]) or []
            if message["direction"] == "outbound" and message["delivery_status"] == "sent"
        ]
        recent = [moment for moment in sent if newest - moment <= window]
        if recent:
            found[row["conversation_id"]] = max(recent)
    return found


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_code(heading: str) -> str:
    """The first code block under ``heading`` (a whole line, ``## ...``) of the README, as a user
    copies it."""
    text = "\n" + README.read_text(encoding="utf-8")
    section = text[text.index(f"\n{heading}\n") :]
    start = section.index("```")
    body = section[section.index("\n", start) + 1 :]
    return body[: body.index("```")]


# How Airflow lists the provider's connection type (`airflow providers hooks`, get_provider_info).
OCTOPUSH_HOOK_ENTRY = {
    "connection_type": "octopush",
    "class": "octopush_provider.hooks.octopush.OctopushHook",
    "conn_id_attribute_name": "octopush_conn_id",
    "package_name": "airflow-provider-octopush",
    "hook_name": "Octopush",
}
