"""``octopush_dlt.tables``: the registry every reader of a table's facts reads."""

from __future__ import annotations

import pyarrow as pa
import pytest

from octopush_dlt import settings
from octopush_dlt.privacy import PrivacyPolicy
from octopush_dlt.tables import CONVERSATIONS, MESSAGES, PROTECTED, TABLES, TableSpec


def test_each_table_declares_its_name_key_cursor_and_parent():
    assert [(t.name, t.primary_key, t.cursor, t.parent_key) for t in TABLES] == [
        ("conversations", "conversation_id", "last_message_at", None),
        ("messages", "message_id", None, "conversation_id"),
    ]


def test_the_personal_columns_are_the_readmes():
    assert sorted(CONVERSATIONS.personal) == [
        "agent_assigned_to",
        "last_message",
        "recipient_details__name",
        "recipient_details__phone_number",
    ]
    assert sorted(MESSAGES.personal) == [
        "agent_assigned_to",
        "contact_name",
        "text",
        "user_identifier",
        "user_identifiers__email",
        "user_identifiers__facebook_page_id",
        "user_identifiers__phone_number",
    ]


def test_keys_and_cursors_are_protected_from_hashing_and_dropping():
    assert PROTECTED == ("conversation_id", "last_message_at", "message_id")


def test_a_table_naming_a_column_it_lacks_is_refused():
    with pytest.raises(ValueError, match="table t: no column id, who"):
        TableSpec(
            name="t",
            primary_key="id",
            nested="n",
            personal=("who",),
            schema=pa.schema([pa.field("other", pa.string())]),
        )


def test_the_source_settings_read_the_registry():
    assert (settings.TABLE_NAME, settings.RESOURCE_NAME) == ("conversations", "conversations")
    assert (settings.PRIMARY_KEY, settings.CURSOR_COLUMN) == ("conversation_id", "last_message_at")
    assert (settings.MESSAGES_TABLE_NAME, settings.MESSAGES_RESOURCE_NAME) == (
        "messages",
        "messages",
    )
    assert settings.MESSAGES_PRIMARY_KEY == "message_id"
    assert (settings.DEFAULT_DATASET_NAME, settings.DEFAULT_PIPELINE_NAME) == (
        "octopush",
        "octopush_conversations",
    )


@pytest.mark.parametrize("column", ["conversation_id", "last_message_at", "message_id"])
def test_privacy_refuses_a_protected_column_by_default(column):
    with pytest.raises(ValueError, match=f"{column} cannot be hashed or dropped"):
        PrivacyPolicy.build(hash_columns=None, drop_columns=[column], hash_secret=None)


def test_privacy_knows_every_registered_column_by_default():
    policy = PrivacyPolicy.build(
        hash_columns=None, drop_columns=["contact_name", "last_message"], hash_secret=None
    )
    assert policy.drop_columns == ("contact_name", "last_message")
    with pytest.raises(ValueError, match="no table has the column"):
        PrivacyPolicy.build(hash_columns=None, drop_columns=["phone"], hash_secret=None)
