"""Parsing of conversation objects: what is required, what is coerced, what is kept; and what
a load does with values of the wrong type, served over HTTP by the sandbox."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from octopush_dlt.arrow import to_table
from octopush_dlt.runner import run_load
from octopush_dlt.tables import CONVERSATIONS
from octopush_provider import conversations
from octopush_provider.conversations import parse_conversation, to_utc
from octopush_provider.exceptions import OctopushResponseError
from tests.helpers import conversations_source

THIRTY_DIGITS = orjson.Fragment(b"123456789012345678901234567890")


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-03-29T01:30:00+01:00", datetime(2026, 3, 29, 0, 30, tzinfo=UTC)),  # before DST
        ("2026-03-29T03:30:00+02:00", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # after DST
        ("2026-10-25T02:30:00+02:00", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # first 2:30
        ("2026-10-25T02:30:00+01:00", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),  # second 2:30
        ("2024-06-07T05:22:43-05:00", datetime(2024, 6, 7, 10, 22, 43, tzinfo=UTC)),
        ("2024-06-07T10:22:43Z", datetime(2024, 6, 7, 10, 22, 43, tzinfo=UTC)),
        ("2024-06-07T10:22Z", datetime(2024, 6, 7, 10, 22, tzinfo=UTC)),
        ("2024-06-07T12:22:43.250+02:00", datetime(2024, 6, 7, 10, 22, 43, 250000, tzinfo=UTC)),
    ],
)
def test_timestamps_are_normalised_to_utc(text, utc):
    parsed = to_utc(text)

    assert parsed == utc
    assert parsed.utcoffset().total_seconds() == 0


def test_a_timestamp_without_offset_is_taken_as_utc_with_a_warning(caplog):
    conversations._warn_no_offset.cache_clear()

    with caplog.at_level(logging.WARNING):
        parsed = to_utc("2026-11-01T12:00:00")

    assert parsed == datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert "without a UTC offset" in caplog.text


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "12",
        "2026",
        "20261101",
        "2026-11-01",
        "2026-11-01T12",
        "20261101T120000Z",
        "2026-11-01x12:00Z",
    ],
)
def test_only_iso_date_times_are_instants(text):
    with pytest.raises(OctopushResponseError) as raised:
        parse_conversation({"conversation_id": "c1", "last_message_at": text}, page=2, index=5)

    assert "page 2, item 5" in str(raised.value)
    assert "invalid 'last_message_at'" in str(raised.value)
    assert "ISO 8601" in str(raised.value)


def test_integers_at_the_edges_of_64_bits_are_kept_exact():
    row = parse_conversation(
        {
            "conversation_id": "c1",
            "last_message_at": "2024-06-07T05:22:43Z",
            "color": 2**63 - 1,
            "number_of_messages": float(2**53),
        },
        page=1,
        index=0,
    )

    assert (row["color"], row["number_of_messages"]) == (2**63 - 1, 2**53)


def test_counters_sent_as_strings_become_integers():
    row = parse_conversation(
        {
            "conversation_id": 42,
            "last_message_at": "2024-06-07T05:22:43+02:00",
            "color": "2",
            "number_of_messages": " 4 ",
        },
        page=1,
        index=0,
    )

    assert row["conversation_id"] == "42"
    assert (row["color"], row["number_of_messages"]) == (2, 4)
    assert row["first_message_at"] is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"last_message_at": "2024-06-07T05:22:43+02:00"}, "has no 'conversation_id'"),
        ({"conversation_id": "c1"}, "has no 'last_message_at'"),
        ({"conversation_id": "c1", "last_message_at": "yesterday"}, "invalid 'last_message_at'"),
        (
            {"conversation_id": "c1", "last_message_at": "2024-06-07T05:22:43Z", "color": "red"},
            "invalid 'color'",
        ),
        ("not an object", "expected a conversation object"),
    ],
)
def test_an_unusable_conversation_names_the_page_item_and_field(raw, message):
    with pytest.raises(OctopushResponseError, match=message) as raised:
        parse_conversation(raw, page=3, index=7)

    assert "page 3, item 7" in str(raised.value)


def test_fields_the_api_adds_later_are_kept_as_columns():
    rows = [
        parse_conversation(
            {
                "conversation_id": "c1",
                "last_message_at": "2024-06-07T05:22:43+02:00",
                "recipient_details": {"phone_number": "+33600000000", "name": "A", "email": "a@x"},
                "tags": ["vip"],
                "score": 3,
            },
            page=1,
            index=0,
        ),
        parse_conversation(
            {"conversation_id": "c2", "last_message_at": "2024-06-07T05:22:43Z", "score": "high"},
            page=1,
            index=1,
        ),
    ]

    table = to_table(rows, CONVERSATIONS)

    assert table.column("recipient_details__email").to_pylist() == ["a@x", None]
    assert table.column("tags").to_pylist() == [["vip"], None]
    assert table.column("score").to_pylist() == ["3", '"high"']  # mixed types: kept as JSON
    assert (
        table.schema.field("last_message_at").type
        == CONVERSATIONS.schema.field("last_message_at").type
    )


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("last_message_at", "20261101", "not an ISO 8601 date and time"),
        ("first_message_at", 1717000000, "not an ISO 8601 date and time"),
        ("color", True, "is a boolean"),
        ("color", 2.5, "not a whole number"),
        ("color", "1_000", "not an integer"),
        ("number_of_messages", 2**63, "beyond the 64-bit integer range"),
        ("number_of_messages", "-9223372036854775809", "beyond the 64-bit integer range"),
        ("color", THIRTY_DIGITS, "too large to be exact"),
        ("color", 2.0**60, "too large to be exact"),
        ("conversation_id", {"id": 1}, "must be text or an integer, got dict"),
    ],
)
def test_a_value_that_cannot_load_exactly_fails_naming_page_item_and_field(
    make_sandbox, make_client, field, value, problem
):
    sandbox = make_sandbox(conversations=150)
    target = sandbox.store.snapshot()[103]["conversation_id"]
    sandbox.store.rewrite(target, {field: value})

    with pytest.raises(OctopushResponseError) as raised:
        list(make_client(sandbox).iter_conversations())

    assert "page 2, item 3" in str(raised.value)
    assert f"'{field}'" in str(raised.value)
    assert problem in str(raised.value)


def test_text_fields_holding_other_values_keep_their_json_text(make_sandbox, make_pipeline, caplog):
    sandbox = make_sandbox(conversations=40)
    rows = [row["conversation_id"] for row in sandbox.store.snapshot()]
    odd: dict[str, dict[str, Any]] = {
        rows[0]: {"last_message": {"text": "Bonjour", "kind": "rcs"}, "agent_assigned_to": 42},
        rows[1]: {"agent_assigned_to": 7.5, "recipient_details": {"phone_number": 33612345678}},
        rows[2]: {"recipient_details": "unknown", "from": ["36111"]},
        rows[3]: {"score": 2**64 - 1},  # an extra field beyond 64 bits, next to a negative one
        rows[4]: {"score": -1},
    }
    for conversation_id, fields in odd.items():
        sandbox.store.rewrite(conversation_id, fields)
    pipeline = make_pipeline()

    with caplog.at_level(logging.WARNING):
        run_load(pipeline, conversations_source(sandbox, per_page=10))

    with pipeline.sql_client() as client:
        loaded = {
            cid: rest
            for cid, *rest in client.execute_sql(
                "SELECT conversation_id, last_message, agent_assigned_to, "
                'recipient_details__phone_number, recipient_details, "from", score '
                "FROM conversations"
            )
        }
    assert len(loaded) == 40
    assert loaded[rows[0]][:2] == ['{"text":"Bonjour","kind":"rcs"}', "42"]
    assert loaded[rows[1]][1:3] == ["7.5", "33612345678"]
    assert loaded[rows[2]][3:5] == ["unknown", '["36111"]']
    assert (loaded[rows[3]][5], loaded[rows[4]][5]) == ("18446744073709551615", "-1")
    warnings = [r.getMessage() for r in caplog.records if "non-text values" in r.getMessage()]
    assert sorted(warnings) == [
        "Octopush sent 1 non-text values in the text field 'from': kept as their JSON text",
        "Octopush sent 1 non-text values in the text field 'last_message': kept as their JSON text",
        "Octopush sent 1 non-text values in the text field 'recipient_details': kept as their "
        "JSON text",
        "Octopush sent 1 non-text values in the text field 'recipient_details__phone_number': "
        "kept as their JSON text",
        "Octopush sent 2 non-text values in the text field 'agent_assigned_to': kept as their "
        "JSON text",
    ]


def test_an_extra_field_that_changes_type_never_fails_the_load(
    make_sandbox, make_pipeline, monkeypatch, caplog
):
    # Across batches of one run (dlt's writer wants one type per file) and across runs (the
    # warehouse column is typed by the first): values that do not fit land beside it, as text.
    monkeypatch.setattr("octopush_dlt.batches.BATCH_ROWS", 10)
    sandbox = make_sandbox(conversations=30)
    first, _, later = [row["conversation_id"] for row in sandbox.store.snapshot()[:25:12]]
    sandbox.store.rewrite(first, {"score": 5})
    sandbox.store.rewrite(later, {"score": "high"})
    pipeline = make_pipeline()
    run_load(pipeline, conversations_source(sandbox, per_page=10))
    [added] = sandbox.store.add_new(1)
    sandbox.store.rewrite(added, {"score": 2.5})

    with caplog.at_level(logging.WARNING):
        summary = run_load(pipeline, conversations_source(sandbox, per_page=10))

    with pipeline.sql_client() as client:
        scores = dict(
            (cid, (score, text))
            for cid, score, text in client.execute_sql(
                "SELECT conversation_id, score, score__v_text FROM conversations "
                "WHERE score IS NOT NULL OR score__v_text IS NOT NULL"
            )
        )
    assert summary.new == 1
    assert scores == {first: (5, None), later: (None, "high"), added: (None, "2.5")}
    assert "values of field 'score' that do not fit its type bigint" in caplog.text
