"""Turns the API's conversation objects into clean records.

Validated just enough to load safely and never to load a wrong value: a ``conversation_id`` is
required, timestamps must be ISO 8601 date-times and become UTC datetimes (the API writes local
times with any offset), counters become ints even when the API sends strings but are refused when
they cannot be exact 64-bit integers, and fields we do not know are kept as they came.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson

from octopush_provider.exceptions import OctopushResponseError

logger = logging.getLogger(__name__)

ID_FIELD = "conversation_id"
CURSOR_FIELD = "last_message_at"
TIMESTAMP_FIELDS = ("first_message_at", "last_message_at")
INTEGER_FIELDS = ("color", "number_of_messages")

# What a warehouse BIGINT holds; and the largest integer a float (how orjson reads integers of
# more than 64 bits) still holds exactly.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EXACT_FLOAT_MAX = 2**53

_INTEGER = re.compile(r"[+-]?[0-9]+")
# The deepest nesting of objects and arrays kept as it is: Parquet takes 40 levels, not 50.
MAX_NESTING = 32

Conversation = dict[str, Any]


def to_utc(value: str) -> datetime:
    """Parse an ISO 8601 date-time with any offset into an aware UTC datetime.

    Only ``YYYY-MM-DDTHH:MM[:SS[.f]]`` followed by ``Z`` or an offset is an instant; without an
    offset it is taken as UTC, with a warning. Anything else raises ``ValueError``. The standard
    library's parser after a cheap shape check: this runs twice per row.
    """
    # The separators of YYYY-MM-DDTHH:MM, checked by position (a regex costs as much as the
    # parse): fromisoformat alone also takes "2026", "20261101", a bare date or any character
    # in place of the "T".
    if (
        len(value) < 16
        or value[4] != "-"
        or value[7] != "-"
        or value[10] != "T"
        or value[13] != ":"
    ):
        raise ValueError(f"{value!r} is not an ISO 8601 date and time (YYYY-MM-DDTHH:MM:SS+HH:MM)")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        _warn_no_offset()
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@cache
def _warn_no_offset() -> None:
    logger.warning("Octopush sent a timestamp without a UTC offset: taking it (and others) as UTC")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        if abs(value) > EXACT_FLOAT_MAX:
            raise ValueError(
                f"{value!r} is too large to be exact (more than 2**53, sent as a float)"
            )
        return int(value)
    if isinstance(value, str):
        if not _INTEGER.fullmatch(text := value.strip()):
            raise ValueError(f"{value!r} is not an integer")
        value = int(text)
    if not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{value!r} is beyond the 64-bit integer range")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays in ``value`` nest more than ``limit`` levels (it counts as one).

    Walks level by level and stops at the limit: a hostile value costs no more than it must.
    """
    level = [value]
    for _ in range(limit):
        level = [
            inner
            for outer in level
            for inner in (outer.values() if type(outer) is dict else outer)
            if type(inner) in (dict, list)
        ]
        if not level:
            return False
    return True


def keep_deep_values_as_text(record: dict[str, Any], *, page: int, index: int) -> None:
    """Replace, in place, each field nested deeper than a warehouse takes by its JSON text.

    Parquet, which dlt writes, refuses a schema nested some 40 levels deep, and the whole load
    fails at dlt's normalize step without naming the row. Such a value is kept, as text.
    """
    for field, value in record.items():
        if type(value) in (dict, list) and _deeper_than(value, MAX_NESTING):
            logger.warning(
                "Octopush page %d, item %d: field %r is nested more than %d levels deep, "
                "more than a warehouse takes: kept as its JSON text",
                page,
                index,
                field,
                MAX_NESTING,
            )
            record[field] = orjson.dumps(value).decode()


def _invalid(page: int, index: int, problem: str) -> OctopushResponseError:
    return OctopushResponseError(f"page {page}, item {index}: {problem}")


def parse_conversation(raw: Any, *, page: int, index: int) -> Conversation:
    """One API object to one record; raises :class:`OctopushResponseError` naming the field.

    Runs once per row of every load, so the common case (the API sent the right types) takes
    the shortest path.
    """
    if not isinstance(raw, dict):
        raise _invalid(page, index, f"expected a conversation object, got {type(raw).__name__}")
    record = raw.copy()
    conversation_id = record.get(ID_FIELD)
    if type(conversation_id) is not str:
        if conversation_id is None:
            raise _invalid(page, index, f"conversation has no '{ID_FIELD}'")
        if type(conversation_id) is not int:
            kind = type(conversation_id).__name__
            raise _invalid(page, index, f"'{ID_FIELD}' must be text or an integer, got {kind}")
        record[ID_FIELD] = conversation_id = str(conversation_id)
    if not conversation_id:
        raise _invalid(page, index, f"conversation has no '{ID_FIELD}'")
    field = ""
    try:
        for field in TIMESTAMP_FIELDS:
            value = record.get(field)
            if type(value) is str and value:
                record[field] = to_utc(value)
            elif value is None or value == "":
                record[field] = None
            else:
                raise ValueError(f"{value!r} is not an ISO 8601 date and time")
        for field in INTEGER_FIELDS:
            value = record.get(field)
            if value is not None and (
                type(value) is not int or not INT64_MIN <= value <= INT64_MAX
            ):
                record[field] = _to_int(value)
    except ValueError as error:
        raise _invalid(
            page, index, f"conversation {conversation_id!r} has an invalid '{field}': {error}"
        ) from None
    if record[CURSOR_FIELD] is None:
        raise _invalid(page, index, f"conversation {conversation_id!r} has no '{CURSOR_FIELD}'")
    keep_deep_values_as_text(record, page=page, index=index)
    return record


def parse_page(items: list[Any], *, page: int) -> list[Conversation]:
    """Parse every object of a page."""
    return [parse_conversation(item, page=page, index=index) for index, item in enumerate(items)]
