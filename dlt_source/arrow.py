"""Pages of conversations as Arrow tables with a fixed schema.

Handing dlt Arrow tables skips its per-row normalisation, and a fixed schema keeps the column
types the same whatever the first page happens to contain (an all-null ``agent_assigned_to``, a
``color`` sent as a string). ``recipient_details`` is flattened the way dlt would name it; fields
the API adds later are kept as extra columns.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from provider.conversations import Conversation

RECIPIENT_FIELD = "recipient_details"
RECIPIENT_PREFIX = RECIPIENT_FIELD + "__"

TIMESTAMP = pa.timestamp("us", tz="UTC")

SCHEMA = pa.schema(
    [
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("last_user_channel", pa.string()),
        pa.field("recipient_details__phone_number", pa.string()),
        pa.field("recipient_details__name", pa.string()),
        pa.field("agent_assigned_to", pa.string()),
        pa.field("from", pa.string()),
        pa.field("first_message_at", TIMESTAMP),
        pa.field("last_message_at", TIMESTAMP, nullable=False),
        pa.field("last_message", pa.string()),
        pa.field("purpose", pa.string()),
        pa.field("color", pa.int64()),
        pa.field("number_of_messages", pa.int64()),
    ]
)

_KNOWN_KEYS = frozenset(SCHEMA.names) | {RECIPIENT_FIELD}
_KNOWN_RECIPIENT_PARTS = frozenset(
    name[len(RECIPIENT_PREFIX) :] for name in SCHEMA.names if name.startswith(RECIPIENT_PREFIX)
)


def _value(row: Conversation, key: str) -> Any:
    """A top-level field, or a ``recipient_details__<part>`` field of the nested object."""
    if key.startswith(RECIPIENT_PREFIX):
        recipient = row.get(RECIPIENT_FIELD)
        return recipient.get(key[len(RECIPIENT_PREFIX) :]) if isinstance(recipient, dict) else None
    return row.get(key)


def _extra_columns(rows: list[Conversation]) -> list[str]:
    """Fields the API sent that the schema does not know yet, in a stable order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.keys() - _KNOWN_KEYS:
            seen[key] = None
        recipient = row.get(RECIPIENT_FIELD)
        if isinstance(recipient, dict):
            for part in recipient.keys() - _KNOWN_RECIPIENT_PARTS:
                seen[RECIPIENT_PREFIX + part] = None
    return sorted(seen)


def _extra_array(values: list[Any]) -> pa.Array:
    """Let Arrow infer a new field's type; if its values disagree, keep them as JSON text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else orjson.dumps(v).decode() for v in values])


def to_table(rows: list[Conversation]) -> pa.Table:
    """Build one table from parsed conversations (timestamps already UTC datetimes)."""
    arrays = [
        pa.array([_value(row, field.name) for row in rows], type=field.type) for field in SCHEMA
    ]
    table = pa.Table.from_arrays(arrays, schema=SCHEMA)
    for name in _extra_columns(rows):
        table = table.append_column(name, _extra_array([_value(row, name) for row in rows]))
    return table
