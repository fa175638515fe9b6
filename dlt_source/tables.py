"""The one place that knows each table: its name, key and columns.

The Arrow conversion, dlt's column hints and the resources read their table from here (which
columns are personal is the README's "Personal data"). Columns are named as dlt flattens them
(``recipient_details__phone_number``); fields the API adds later are kept as extra columns,
typed by their values.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from octopush_dlt.settings import (
    MESSAGES_PRIMARY_KEY,
    MESSAGES_TABLE_NAME,
    PRIMARY_KEY,
    TABLE_NAME,
)

TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    """A warehouse table: its fixed columns (``schema``), key and nested object.

    ``nested`` is the API object flattened into ``<nested>__<field>`` columns.
    """

    name: str
    primary_key: str
    schema: pa.Schema
    nested: str

    @property
    def nested_prefix(self) -> str:
        return self.nested + "__"


CONVERSATIONS = TableSpec(
    name=TABLE_NAME,
    primary_key=PRIMARY_KEY,
    nested="recipient_details",
    schema=pa.schema(
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
    ),
)

MESSAGES = TableSpec(
    name=MESSAGES_TABLE_NAME,
    primary_key=MESSAGES_PRIMARY_KEY,
    nested="user_identifiers",
    schema=pa.schema(
        [
            pa.field("message_id", pa.string(), nullable=False),
            pa.field("conversation_id", pa.string(), nullable=False),
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
