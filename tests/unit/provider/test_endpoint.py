"""The endpoints as data (endpoint.py): what tells the conversations list from the messages."""

from __future__ import annotations

from datetime import UTC, datetime

from octopush_provider.endpoint import CONVERSATIONS, MESSAGES


def test_an_endpoint_is_placed_under_a_base_url_at_its_own_path_or_another():
    assert CONVERSATIONS.at("https://h/v1").url == "https://h/v1/conversations/list"
    assert MESSAGES.at("https://h/v1").url == "https://h/v1/conversations/messages/list"
    assert MESSAGES.at("https://h/v1", "/moved/messages/").url == "https://h/v1/moved/messages"


def test_the_conversations_list_is_keyed_by_id_and_ordered_by_the_last_message():
    assert (CONVERSATIONS.noun, CONVERSATIONS.id_field, CONVERSATIONS.cursor_field) == (
        "conversations",
        "conversation_id",
        "last_message_at",
    )


def test_messages_are_keyed_by_message_id_and_have_no_cursor():
    assert (MESSAGES.noun, MESSAGES.id_field, MESSAGES.cursor_field) == (
        "messages",
        "message_id",
        None,
    )


def test_parameters_asked_of_an_endpoint_add_to_its_own():
    asked = MESSAGES.asking({"conversation_id": "cid_1"}).asking({"lang": "fr"})

    assert dict(asked.params) == {"conversation_id": "cid_1", "lang": "fr"}
    assert dict(MESSAGES.params) == {}  # the definition itself is unchanged


def test_each_endpoint_parses_its_own_rows():
    conversation = {"conversation_id": 7, "last_message_at": "2026-11-01T10:00:00-02:00"}
    message = {"message_id": 9, "sent_at": "2026-11-01T10:00:00+02:00"}

    assert CONVERSATIONS.parse([conversation], page=1)[0]["last_message_at"] == datetime(
        2026, 11, 1, 12, 0, tzinfo=UTC
    )
    assert MESSAGES.parse([message], page=1) == [
        {"message_id": "9", "sent_at": datetime(2026, 11, 1, 8, 0, tzinfo=UTC)}
    ]
