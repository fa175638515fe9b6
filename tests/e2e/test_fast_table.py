"""The column-wise fast path gives the validated row-wise path's table, or steps aside.

Pages of odd values go through both: wherever the fast path returns a table, the row-wise path
must return the same table with nothing coerced; every page of the sandbox takes the fast path.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from typing import Any

import orjson
import pyarrow as pa
import pytest

from octopush_dlt.arrow import fast_table, to_table
from octopush_dlt.tables import CONVERSATIONS
from octopush_provider import conversations
from octopush_provider.conversations import CURSOR_FIELD as CURSOR
from octopush_provider.conversations import ID_FIELD as ID
from octopush_provider.conversations import parse_page
from octopush_provider.exceptions import OctopushResponseError
from octopush_provider.sandbox import ConversationStore

ODD_TIMESTAMPS = [
    "2026-11-01T10:00:00Z", "2026-11-01T10:00:00+02:00", "2026-11-01T10:00:00-05:30",
    "2026-11-01T10:00:00-00:00", "2026-11-01T10:00:00+23:59", "2026-11-01T10:00:00+24:00",
    "2026-11-01T10:00:00+02:60", "2026-11-01T10:00:00+0200", "2026-11-01T10:00:00.5Z",
    "2026-11-01T10:00:00.123456+01:00", "2026-11-01T10:00Z", "2026-11-01T10:00:00",
    "2026-11-01", "2026-11-01 10:00:00Z", "2026-11-01T10:00:00z", "2026-11-01T24:00:00Z",
    "2026-11-01T23:59:60Z", "2026-02-30T10:00:00Z", "2026-02-29T10:00:00Z",
    "2024-02-29T10:00:00Z", "2026-13-01T10:00:00Z", "1899-12-31T23:00:00-01:00",
    "1900-01-01T00:00:00+01:00", "2999-12-31T23:59:59-12:00", "0001-01-01T00:00:00Z",
    "9999-12-31T23:00:00-05:00", "20261101T100000Z", "2026-W44-1T10:00:00Z", "", " ",
    "2026-11-01T10:00:00Z ", "2026-11-01T10:00:00+02:00:00", None, 1730455200, 1.5, True, [],
    {},
]  # fmt: skip
# What the fast path takes of them: seconds and an offset, a day the month has, years 1900-2999.
TAKEN_TIMESTAMPS = [
    "2026-11-01T10:00:00Z", "2026-11-01T10:00:00+02:00", "2026-11-01T10:00:00-05:30",
    "2026-11-01T10:00:00-00:00", "2026-11-01T10:00:00+23:59", "2024-02-29T10:00:00Z",
    "1900-01-01T00:00:00+01:00", "2999-12-31T23:59:59-12:00",
]  # fmt: skip
ODD_INTEGERS = [
    0, 1, -1, 2**31, 2**53, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 2.0, 2.5,
    -0.0, 1e300, float(2**60), "7", " 7 ", "-7", "+7", "7.0", "x", "", True, False, None, [1],
    {"a": 1},
]  # fmt: skip
ODD_TEXTS = [
    "", "a", "é🙏", "\x00", None, 0, 1, -1.5, True, False, [], ["a"], {}, {"a": None}, 2**70,
]  # fmt: skip
ODD_IDS = ["", "a", "0", " ", None, 0, 7, -7, 2**70, 1.0, True, [], {}]
ODD_RECIPIENTS = [
    None, {}, {"phone_number": "+33600000000"}, {"name": "Zoé", "phone_number": None},
    {"name": 5}, {"phone_number": ["+33"]}, {"extra": "x"}, {"name": "a", "extra": 1}, "",
    "+33600000000", [], [{"name": "a"}], 0, True,
]  # fmt: skip
TEXT_FIELDS = ("last_user_channel", "agent_assigned_to", "from", "last_message", "purpose")
EXTRA_FIELDS = {"tags": ["a"], "score": 1.5, "recipient_details__name": "top-level", "flag": True}


def _sandbox_items(count: int, *, offsets: str = "mixed") -> list[dict[str, Any]]:
    store = ConversationStore.generate(count, offsets=offsets)
    items: list[dict[str, Any]] = orjson.loads(orjson.dumps(store.snapshot()))
    return items


def _slow(items: list[Any]) -> tuple[pa.Table | None, Counter[str], str | None]:
    coerced: Counter[str] = Counter()
    try:
        return to_table(parse_page(items, page=1), CONVERSATIONS, coerced=coerced), coerced, None
    except OctopushResponseError as error:
        return None, coerced, str(error)


def _assert_same(items: list[Any]) -> bool:
    """Both paths on one page, sent as JSON; returns whether the fast path took it."""
    return _assert_same_body(json.dumps(items).encode())


def _assert_same_body(body: bytes) -> bool:
    fast = fast_table(body)
    if fast is None:
        return False
    table, keys = fast
    items = orjson.loads(body)  # the client's own parser takes every body the fast path takes
    slow, coerced, error = _slow(items)
    assert error is None, f"the fast path took a page the row-wise path refuses: {error}"
    assert not coerced, f"the fast path took values the row-wise path coerces: {coerced}"
    assert slow is not None
    assert table.schema == slow.schema
    assert table.equals(slow), f"{table.to_pylist()} != {slow.to_pylist()}"
    assert keys == [{ID: item[ID], CURSOR: item[CURSOR]} for item in items]
    return True


def _odd_page(rng: random.Random, base: list[dict[str, Any]]) -> list[Any]:
    """A few sandbox rows, one of them with one field set to an odd value (or removed)."""
    page: list[Any] = [dict(row) for row in rng.sample(base, 3)]
    row = page[1]
    choice = rng.randrange(8)
    if choice == 0:
        row[rng.choice(("first_message_at", "last_message_at"))] = rng.choice(ODD_TIMESTAMPS)
    elif choice == 1:
        row[rng.choice(("color", "number_of_messages"))] = rng.choice(ODD_INTEGERS)
    elif choice == 2:
        row[rng.choice(TEXT_FIELDS)] = rng.choice(ODD_TEXTS)
    elif choice == 3:
        row["conversation_id"] = rng.choice(ODD_IDS)
    elif choice == 4:
        row["recipient_details"] = rng.choice(ODD_RECIPIENTS)
    elif choice == 5:
        name = rng.choice(list(EXTRA_FIELDS))
        row[name] = EXTRA_FIELDS[name]
    elif choice == 6:
        del row[rng.choice(list(row))]
    else:
        page[1] = rng.choice([None, "x", 1, [], [row]])
    return page


def test_every_sandbox_page_takes_the_fast_path_with_the_same_table():
    for offsets in ("paris", "mixed"):
        items = _sandbox_items(3000, offsets=offsets)
        for start in range(0, len(items), 1000):
            assert _assert_same(items[start : start + 1000])


def test_odd_values_give_the_same_table_or_go_the_row_wise_way():
    rng = random.Random(12)
    base = _sandbox_items(200)
    taken = sum(_assert_same(_odd_page(rng, base)) for _ in range(3000))
    # Some odd pages are still the common case (an empty text, a null count, a missing field).
    assert 0 < taken < 3000


@pytest.mark.parametrize("value", ODD_TIMESTAMPS)
@pytest.mark.parametrize("field", ["first_message_at", "last_message_at"])
def test_each_odd_timestamp(field, value):
    row = _sandbox_items(1)[0] | {field: value}
    assert _assert_same([row]) is (value in TAKEN_TIMESTAMPS)


@pytest.mark.parametrize("value", ODD_INTEGERS)
def test_each_odd_integer(value):
    row = _sandbox_items(1)[0] | {"number_of_messages": value}
    taken = _assert_same([row])
    assert taken == (value is None or (type(value) is int and -(2**63) <= value < 2**63))


@pytest.mark.parametrize("value", ODD_TEXTS + ODD_IDS + ODD_RECIPIENTS)
@pytest.mark.parametrize("field", ["last_message", "conversation_id", "recipient_details"])
def test_each_odd_text_id_and_recipient(field, value):
    row = _sandbox_items(1)[0] | {field: value}
    assert _assert_same([row]) is _common(field, value)


def _common(field: str, value: Any) -> bool:
    """Whether the fast path takes ``value`` in ``field``: text (or null) where text belongs,
    an id that is non-empty text, a recipient that is null or an object of known text fields."""
    if field == "conversation_id":
        return type(value) is str and value != ""
    if field == "recipient_details":
        return value is None or (
            type(value) is dict
            and value.keys() <= {"phone_number", "name"}
            and all(part is None or type(part) is str for part in value.values())
        )
    return value is None or type(value) is str


def test_a_timestamp_without_offset_goes_the_row_wise_way_which_warns_about_it(caplog):
    row = _sandbox_items(1)[0] | {"last_message_at": "2026-11-01T10:00:00"}
    assert fast_table(json.dumps([row]).encode()) is None
    conversations._warn_no_offset.cache_clear()

    with caplog.at_level(logging.WARNING):
        table, _, error = _slow([row])

    assert error is None and table is not None
    assert "without a UTC offset" in caplog.text


_ROW = _sandbox_items(1)[0] | {"conversation_id": "c1", "number_of_messages": 2}
ROW = orjson.dumps(_ROW)
ODD_BODIES = {
    "pretty printed": (json.dumps([_ROW], indent=2).encode(), True),
    "escaped text": (json.dumps([_ROW | {"conversation_id": "cé🙏\n\u0000"}]).encode(), True),
    "duplicate key": (b"[" + ROW[:-1] + b',"number_of_messages":3}' + b"]", False),
    "invalid UTF-8": (b"[" + ROW.replace(b"c1", b"c\xff") + b"]", False),
    "lone surrogate": (b"[" + ROW.replace(b"c1", b"c\\ud800") + b"]", False),
    "byte order mark": (b"\xef\xbb\xbf[" + ROW + b"]", False),
    "null": (b"null", False),
    "a null item": (b"[" + ROW + b",null]", False),
    "empty list": (b"[]", False),
    "nested list": (b"[[" + ROW + b"]]", False),
    "an object": (ROW, False),
    "two lists": (b"[" + ROW + b"] [" + ROW + b"]", False),
    "trailing comma": (b"[" + ROW + b",]", False),
    "truncated": (b"[" + ROW[:-5], False),
    "empty body": (b"", False),
    "a float count": (b"[" + ROW.replace(b":2}", b":2.0}") + b"]", False),
    "an exponent count": (b"[" + ROW.replace(b":2}", b":2e0}") + b"]", False),
    "NaN count": (b"[" + ROW.replace(b":2}", b":NaN}") + b"]", False),
}  # fmt: skip


@pytest.mark.parametrize("name", ODD_BODIES)
def test_odd_bodies_give_the_same_table_or_go_the_row_wise_way(name):
    body, taken = ODD_BODIES[name]
    assert _assert_same_body(b"[" + ROW + b"]")
    assert _assert_same_body(body) is taken
