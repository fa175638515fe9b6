"""The messages guard (messages.py): a client's read of one conversation, checked against it."""

from __future__ import annotations

from collections.abc import Callable

from octopush_provider.endpoint import MESSAGES
from octopush_provider.messages import ConversationMessages, MessageParent, MessagesGuard
from octopush_provider.page import Page, StopReason
from octopush_provider.paging import PageStream

PHONE = "+33 6 12 34 56 78"


def _message(n: int, phone: str = "+33612345678") -> dict[str, object]:
    return {"message_id": f"m{n}", "user_identifiers": {"phone_number": phone}}


def _pages(*pages: list[dict[str, object]]) -> Callable[[int], Page]:
    def fetch(number: int) -> Page:
        rows = pages[number - 1] if number <= len(pages) else []
        return Page(number=number, rows=rows, end=None if rows else StopReason.EMPTY_PAGE)

    return fetch


def _read(guard: MessagesGuard, fetch: Callable[[int], Page]) -> ConversationMessages:
    stream = PageStream(
        fetch, endpoint=MESSAGES, stop_when=guard.enough, max_pages=guard.max_pages, page_wait=5
    )
    return guard.collect(stream)


def test_the_read_stops_once_the_announced_messages_are_in():
    asked: list[int] = []
    fetch = _pages([_message(1), _message(2)], [_message(3)], [_message(4)])
    guard = MessagesGuard(
        MessageParent(conversation_id="c1", phone_number=PHONE, number_of_messages=3)
    )

    result = _read(guard, lambda n: asked.append(n) or fetch(n))

    assert asked == [1, 2]
    assert [m["message_id"] for m in result.messages] == ["m1", "m2", "m3"]
    assert (result.requests, result.error) == (2, None)


def test_the_page_cap_is_the_count_plus_the_arrival_slack_plus_one():
    assert MessagesGuard(MessageParent(conversation_id="c", number_of_messages=5)).max_pages == 16
    assert MessagesGuard(MessageParent(conversation_id="c")).max_pages is None


def test_a_message_to_another_phone_number_fails_the_conversation_and_loads_none():
    fetch = _pages([_message(1), _message(2, phone="+44 7700 900123")])
    guard = MessagesGuard(MessageParent(conversation_id="c1", phone_number=PHONE))

    result = _read(guard, fetch)

    assert result.messages == []
    assert "a message to another phone number" in str(result.error)


def test_far_more_messages_than_announced_fail_the_conversation():
    fetch = _pages([_message(n) for n in range(13)])
    guard = MessagesGuard(MessageParent(conversation_id="c1", number_of_messages=2))

    result = _read(guard, fetch)

    assert result.messages == []
    assert str(result.error).startswith("conversation 'c1' has 2 messages but the API answered 13")


def test_ten_messages_more_than_announced_are_ones_that_arrived_since_the_list_was_read():
    fetch = _pages([_message(n) for n in range(12)])
    guard = MessagesGuard(MessageParent(conversation_id="c1", number_of_messages=2))

    result = _read(guard, fetch)

    assert result.error is None
    assert len(result.messages) == 12


def test_messages_served_twice_are_kept_once():
    fetch = _pages([_message(1), _message(2)], [_message(2), _message(3)])
    guard = MessagesGuard(MessageParent(conversation_id="c1", number_of_messages=3))

    result = _read(guard, fetch)

    assert [m["message_id"] for m in result.messages] == ["m1", "m2", "m3"]
