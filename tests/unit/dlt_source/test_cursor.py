"""The read's tally: distinct conversations per kind, the cursor, and rows in the future."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from octopush_dlt.cursor import ReadTally
from octopush_dlt.tables import TIMESTAMP

START = datetime(2026, 11, 1, tzinfo=UTC)


def _table(*rows: tuple[str, int, int]) -> pa.Table:
    """Rows of (id, first message, last message), in minutes after START."""
    return pa.table(
        {
            "conversation_id": [row[0] for row in rows],
            "first_message_at": pa.array(
                [START + timedelta(minutes=r[1]) for r in rows], TIMESTAMP
            ),
            "last_message_at": pa.array([START + timedelta(minutes=r[2]) for r in rows], TIMESTAMP),
        }
    )


def test_each_conversation_counts_once_as_its_highest_kind_and_the_cursor_is_the_newest():
    tally = ReadTally(previous=START + timedelta(minutes=10), horizon=START + timedelta(days=1))

    tally.add(_table(("new", 11, 12), ("upd", 1, 11), ("same", 1, 9)))
    assert not tally.repeated
    tally.add(_table(("same", 1, 10), ("upd", 1, 5), ("same", 1, 13)))  # moved, read again

    assert tally.repeated
    assert tally.finish() == {"new": 1, "updated": 2, "unchanged": 0, "future": 0}
    assert tally.cursor == START + timedelta(minutes=13)
    assert tally.cursor.tzinfo is UTC


def test_rows_in_the_future_are_counted_and_named_but_never_the_cursor(caplog):
    tally = ReadTally(previous=None, horizon=START)

    with caplog.at_level(logging.WARNING):
        tally.add(_table(("late", 0, 60), ("both", 0, 61), ("ok", -5, -1)))
        tally.add(_table(("both", 0, -2), ("late", 0, 60)))

    assert tally.finish() == {"new": 2, "updated": 0, "unchanged": 0, "future": 1}
    assert tally.cursor == START - timedelta(minutes=1)
    assert caplog.text.count("has last_message_at") == 2  # each named once
    assert tally.repeated


def test_nothing_read_leaves_the_cursor_where_it_was():
    previous = START - timedelta(hours=1)
    tally = ReadTally(previous=previous, horizon=START)

    assert tally.finish() == {"new": 0, "updated": 0, "unchanged": 0, "future": 0}
    assert tally.cursor is previous
    assert not tally.repeated


def test_a_slice_counts_every_row_as_new_but_never_moves_the_cursor_back():
    stored = START + timedelta(minutes=30)
    empty = ReadTally(previous=None, horizon=START + timedelta(days=1), cursor=stored)
    older = ReadTally(previous=None, horizon=START + timedelta(days=1), cursor=stored)

    older.add(_table(("a", 1, 20)))

    assert empty.cursor is stored and empty.finish()["new"] == 0
    assert older.cursor is stored and older.finish()["new"] == 1
