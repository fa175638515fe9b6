"""Turns the API's conversation objects into clean records.

Validated just enough to load safely: a ``conversation_id`` is required, timestamps become UTC
datetimes (the API writes local times with any offset), counters become ints even when the API
sends strings, and fields we do not know are kept as they came.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pendulum
from pendulum.parsing import ParserError, parse_iso8601

from provider.exceptions import OctopushResponseError

ID_FIELD = "conversation_id"
CURSOR_FIELD = "last_message_at"
TIMESTAMP_FIELDS = ("first_message_at", "last_message_at")
INTEGER_FIELDS = ("color", "number_of_messages")

Conversation = dict[str, Any]


def to_utc(value: str) -> datetime:
    """Parse an ISO 8601 timestamp with any offset into an aware UTC datetime.

    A timestamp without an offset is taken as UTC. Uses pendulum's compiled ISO 8601 parser first
    (fast), then its lenient parser for the odd formats a lenient API may produce.
    """
    try:
        parsed: Any = parse_iso8601(value)
    except (ParserError, ValueError):
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


def parse_conversation(raw: Any, *, page: int, index: int) -> Conversation:
    """One API object to one record; raises :class:`OctopushResponseError` naming the field."""
    where = f"page {page}, item {index}"
    if not isinstance(raw, dict):
        raise OctopushResponseError(
            f"{where}: expected a conversation object, got {type(raw).__name__}"
        )
    conversation_id = raw.get(ID_FIELD)
    if conversation_id is None or conversation_id == "" or isinstance(conversation_id, bool):
        raise OctopushResponseError(f"{where}: conversation has no '{ID_FIELD}'")
    record = dict(raw)
    record[ID_FIELD] = str(conversation_id)
    try:
        for field in TIMESTAMP_FIELDS:
            if record.get(field) not in (None, ""):
                record[field] = to_utc(str(record[field]))
            else:
                record[field] = None
        for field in INTEGER_FIELDS:
            if record.get(field) is not None:
                record[field] = _to_int(record[field])
    except (ValueError, TypeError, ParserError) as error:
        raise OctopushResponseError(
            f"{where}: conversation {record[ID_FIELD]!r} has an invalid '{field}': {error}"
        ) from None
    if record[CURSOR_FIELD] is None:
        raise OctopushResponseError(
            f"{where}: conversation {record[ID_FIELD]!r} has no '{CURSOR_FIELD}'"
        )
    return record


def parse_page(items: list[Any], *, page: int) -> list[Conversation]:
    """Parse every object of a page."""
    return [parse_conversation(item, page=page, index=index) for index, item in enumerate(items)]
