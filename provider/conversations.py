"""Turns the API's conversation objects into clean records.

Validated just enough to load safely: a ``conversation_id`` is required, timestamps become UTC
datetimes (the API writes local times with any offset), counters become ints even when the API
sends strings, and fields we do not know are kept as they came.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pendulum
from pendulum.parsing import ParserError

from octopush_provider.exceptions import OctopushResponseError

ID_FIELD = "conversation_id"
CURSOR_FIELD = "last_message_at"
TIMESTAMP_FIELDS = ("first_message_at", "last_message_at")
INTEGER_FIELDS = ("color", "number_of_messages")

Conversation = dict[str, Any]


def to_utc(value: str) -> datetime:
    """Parse an ISO 8601 timestamp with any offset into an aware UTC datetime.

    A timestamp without an offset is taken as UTC. The standard library's parser handles what
    the API writes at a fraction of the cost (this runs twice per row); pendulum's lenient
    parser takes the odd formats a lenient API may also produce.
    """
    try:
        parsed: Any = datetime.fromisoformat(value)
    except ValueError:
        parsed = pendulum.parse(value, strict=False)
    if not isinstance(parsed, datetime):
        raise ValueError(f"{value!r} is not a date and time")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError(f"{value!r} is not an integer")


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
        if conversation_id is None or isinstance(conversation_id, bool):
            raise _invalid(page, index, f"conversation has no '{ID_FIELD}'")
        record[ID_FIELD] = conversation_id = str(conversation_id)
    if not conversation_id:
        raise _invalid(page, index, f"conversation has no '{ID_FIELD}'")
    field = ""
    try:
        for field in TIMESTAMP_FIELDS:
            value = record.get(field)
            record[field] = to_utc(value if type(value) is str else str(value)) if value else None
        for field in INTEGER_FIELDS:
            value = record.get(field)
            if value is not None and type(value) is not int:
                record[field] = _to_int(value)
    except (ValueError, TypeError, ParserError) as error:
        raise _invalid(
            page, index, f"conversation {conversation_id!r} has an invalid '{field}': {error}"
        ) from None
    if record[CURSOR_FIELD] is None:
        raise _invalid(page, index, f"conversation {conversation_id!r} has no '{CURSOR_FIELD}'")
    return record


def parse_page(items: list[Any], *, page: int) -> list[Conversation]:
    """Parse every object of a page."""
    return [parse_conversation(item, page=page, index=index) for index, item in enumerate(items)]
