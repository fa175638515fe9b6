"""The one place that knows each table: name, key, cursor, columns and which of them are personal.

The source's settings (:mod:`octopush_dlt.settings`), the privacy layer's defaults, the Arrow
conversion, dlt's column hints and the resources read their table from here; the table names
themselves are :mod:`octopush_provider.settings`'s, so that the Airflow operator names the same
tables without importing dlt. Keys and cursors are the API's field names, as the core declares
them. Columns are named as dlt flattens them (``recipient_details__phone_number``); fields the
API adds later are kept as extra columns, typed by their values.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from octopush_provider.conversations import CURSOR_FIELD, ID_FIELD
from octopush_provider.messages import MESSAGE_ID_FIELD
from octopush_provider.settings import CONVERSATIONS_TABLE, MESSAGES_TABLE

__all__ = ["CONVERSATIONS", "MESSAGES", "PROTECTED", "TABLES", "TIMESTAMP", "TableSpec"]

TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    """A warehouse table, loaded by the dlt resource of the same name.

    Args:
        name: The table's name, and its resource's.
        primary_key: The column dlt merges on: the API's id field of a row.
        cursor: The column the incremental load follows, if the table has one.
        parent_key: The column holding the key of the parent table's row, if any.
        nested: The API object flattened into ``<nested>__<field>`` columns.
        personal: The columns that hold personal data (what ``hash_columns`` and
            ``drop_columns`` are for); docs/personal-data.md lists the same.
        schema: The fixed columns, in order, with their Arrow types.
    """

    name: str
    primary_key: str
    cursor: str | None = None
    parent_key: str | None = None
    nested: str
    personal: tuple[str, ...]
    schema: pa.Schema

    def __post_init__(self) -> None:
        named = (self.primary_key, self.cursor, self.parent_key, *self.personal)
        unknown = [name for name in named if name is not None and name not in self.schema.names]
        if unknown:
            raise ValueError(f"table {self.name}: no column {', '.join(unknown)}")

    @property
    def nested_prefix(self) -> str:
        return self.nested + "__"

    @property
    def protected(self) -> tuple[str, ...]:
        """The columns the loader needs as they are: never hashed nor dropped."""
        return tuple(name for name in (self.primary_key, self.cursor) if name is not None)


CONVERSATIONS = TableSpec(
    name=CONVERSATIONS_TABLE,
    primary_key=ID_FIELD,
    cursor=CURSOR_FIELD,
    nested="recipient_details",
    personal=(
        "recipient_details__phone_number",
        "recipient_details__name",
        "last_message",
        "agent_assigned_to",
    ),
    schema=pa.schema(
        [
            pa.field(ID_FIELD, pa.string(), nullable=False),
            pa.field("last_user_channel", pa.string()),
            pa.field("recipient_details__phone_number", pa.string()),
            pa.field("recipient_details__name", pa.string()),
            pa.field("agent_assigned_to", pa.string()),
            pa.field("from", pa.string()),
            pa.field("first_message_at", TIMESTAMP),
            pa.field(CURSOR_FIELD, TIMESTAMP, nullable=False),
            pa.field("last_message", pa.string()),
            pa.field("purpose", pa.string()),
            pa.field("color", pa.int64()),
            pa.field("number_of_messages", pa.int64()),
        ]
    ),
)

MESSAGES = TableSpec(
    name=MESSAGES_TABLE,
    primary_key=MESSAGE_ID_FIELD,
    parent_key=CONVERSATIONS.primary_key,
    nested="user_identifiers",
    personal=(
        "text",
        "user_identifier",
        "user_identifiers__phone_number",
        "user_identifiers__email",
        "user_identifiers__facebook_page_id",
        "contact_name",
        "agent_assigned_to",
    ),
    schema=pa.schema(
        [
            pa.field(MESSAGE_ID_FIELD, pa.string(), nullable=False),
            pa.field(CONVERSATIONS.primary_key, pa.string(), nullable=False),
            pa.field("text", pa.string()),
            pa.field("direction", pa.string()),
            pa.field("delivery_status", pa.string()),
            pa.field("channel", pa.string()),
            pa.field("user_identifier", pa.string()),
            pa.field("user_identifiers__phone_number", pa.string()),
            pa.field("user_identifiers__email", pa.string()),
            pa.field("user_identifiers__facebook_page_id", pa.string()),
            pa.field("agent_assigned_to", pa.string()),
            pa.field("contact_name", pa.string()),
        ]
    ),
)

TABLES = (CONVERSATIONS, MESSAGES)
# Keys and cursors of every table: the privacy layer refuses to hash or drop them.
PROTECTED = tuple(dict.fromkeys(name for table in TABLES for name in table.protected))
