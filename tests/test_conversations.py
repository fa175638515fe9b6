"""Parsing of conversation objects: what is required, what is coerced, what is kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from octopush_dlt.arrow import to_table
from octopush_dlt.tables import CONVERSATIONS
from octopush_provider.conversations import parse_conversation, to_utc
from octopush_provider.exceptions import OctopushResponseError


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-03-29T01:30:00+01:00", datetime(2026, 3, 29, 0, 30, tzinfo=UTC)),  # before DST
        ("2026-03-29T03:30:00+02:00", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # after DST
        ("2026-10-25T02:30:00+02:00", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # first 2:30
        ("2026-10-25T02:30:00+01:00", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),  # second 2:30
        ("2024-06-07T05:22:43-05:00", datetime(2024, 6, 7, 10, 22, 43, tzinfo=UTC)),
        ("2024-06-07T10:22:43Z", datetime(2024, 6, 7, 10, 22, 43, tzinfo=UTC)),
    ],
)
def test_timestamps_are_normalised_to_utc(text, utc):
    parsed = to_utc(text)

    assert parsed == utc
    assert parsed.utcoffset().total_seconds() == 0


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
