"""The paging machine (paging.py), over fake page fetchers: no HTTP, no server."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

from octopush_provider.endpoint import CONVERSATIONS, MESSAGES
from octopush_provider.exceptions import OctopushResponseError
from octopush_provider.page import Page, StopReason
from octopush_provider.paging import PageStream


def _conversations(*ids: str) -> list[dict[str, object]]:
    return [
        {"conversation_id": i, "last_message_at": f"2026-11-01T12:00:{n:02d}Z"}
        for n, i in enumerate(ids)
    ]


class FakeList:
    """A list served ``per_page`` rows a page, newest first; an empty page past the end."""

    def __init__(self, rows: list[dict[str, object]], *, per_page: int) -> None:
        self.rows = rows
        self.per_page = per_page
        self.asked: list[int] = []
        self.before: dict[int, Callable[[], None]] = {}  # request count -> change to the list
        self._lock = threading.Lock()  # a request and the change due before it are one step

    def __call__(self, number: int) -> Page:
        with self._lock:
            self.asked.append(number)
            if change := self.before.pop(len(self.asked), None):
                change()
        start = (number - 1) * self.per_page
        rows = self.rows[start : start + self.per_page]
        end = None if rows else StopReason.EMPTY_PAGE
        return Page(number=number, rows=[dict(row) for row in rows], end=end)


def _stream(fetch: FakeList, **options: object) -> PageStream:
    options.setdefault("endpoint", CONVERSATIONS)
    return PageStream(fetch, page_wait=5.0, **options)


def test_an_in_order_read_yields_every_page_and_ends_at_the_empty_one(caplog):
    fetch = FakeList(_conversations(*"abcdefg"), per_page=3)
    stream = _stream(fetch)

    with caplog.at_level(logging.INFO, logger="octopush_provider.paging"):
        pages = [[row["conversation_id"] for row in rows] for rows in stream]

    assert pages == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert fetch.asked == [1, 2, 3, 4]
    assert (stream.report.pages, stream.report.rows, stream.report.requests) == (3, 7, 4)
    assert stream.report.stop_reason is StopReason.EMPTY_PAGE
    assert caplog.messages[-1].startswith(
        "Octopush read ended (empty_page): 3 pages, 7 conversations, 4 requests, 0 retries in "
    )


def test_the_report_keeps_the_conversations_key_summaries_read():
    stream = _stream(FakeList(_conversations("a", "b"), per_page=5))
    list(stream)

    figures = stream.report.as_dict()

    assert (figures["pages"], figures["conversations"], figures["stop_reason"]) == (
        1,
        2,
        "empty_page",
    )


def test_a_stop_condition_that_holds_reads_one_page_more_to_confirm_it():
    fetch = FakeList(_conversations(*"abcdefghij"), per_page=2)
    stream = _stream(fetch, stop_when=lambda page: page.number >= 2, confirm_stop=True)

    assert len(list(stream)) == 3
    assert stream.report.stop_reason is StopReason.CAUGHT_UP


def test_max_pages_stops_the_read_with_a_warning_naming_the_endpoints_rows(caplog):
    fetch = FakeList([{"message_id": f"m{n}"} for n in range(10)], per_page=2)
    stream = _stream(fetch, endpoint=MESSAGES, max_pages=2)

    with caplog.at_level(logging.WARNING, logger="octopush_provider.paging"):
        assert len(list(stream)) == 2

    assert stream.report.stop_reason is StopReason.MAX_PAGES
    assert (
        "Octopush read stopped at max_pages=2, a safety cap: messages on later pages were not read"
        in caplog.messages
    )


def test_a_server_that_ignores_the_page_is_refused_in_the_endpoints_words():
    same = [{"message_id": f"m{n}"} for n in range(3)]

    def always_the_first_page(number: int) -> Page:
        return Page(number=number, rows=[dict(row) for row in same])

    stream = PageStream(always_the_first_page, endpoint=MESSAGES, page_wait=5.0)

    with pytest.raises(OctopushResponseError) as raised:
        list(stream)

    assert str(raised.value).startswith(
        "Octopush served 6 messages again and 3 new ones up to page 3: more than messages "
        "moving to the top"
    )


def test_rows_are_told_apart_by_the_endpoints_id_field():
    rows = [{"message_id": f"m{n}", "conversation_id": "same"} for n in range(6)]
    stream = _stream(FakeList(rows, per_page=2), endpoint=MESSAGES)

    assert sum(len(page) for page in stream) == 6  # the same conversation_id is no repeat


def test_a_read_past_the_page_ceiling_fails():
    rows = [{"conversation_id": str(n), "last_message_at": "x"} for n in range(10)]
    stream = _stream(FakeList(rows, per_page=1), page_ceiling=3)

    with pytest.raises(OctopushResponseError, match=r"served 3 pages without an end, up to page 4"):
        list(stream)


@pytest.mark.parametrize("moved", [False, True])
def test_a_concurrent_read_reads_again_in_order_only_when_the_head_moved(moved, caplog):
    fetch = FakeList(_conversations(*"abcdefghijkl"), per_page=3)
    if moved:  # before the 3rd request, a new conversation arrives at the top
        fetch.before[3] = lambda: fetch.rows.insert(0, _conversations("new")[0])
    stream = _stream(fetch, concurrency=2)

    with caplog.at_level(logging.WARNING, logger="octopush_provider.paging"):
        ids = {row["conversation_id"] for rows in stream for row in rows}

    assert stream.report.reread is moved
    assert ids == set("abcdefghijkl") | ({"new"} if moved else set())
    warned = (
        "Octopush conversations moved during a concurrent read; reading the pages again in "
        "order so that none is missed"
    )
    assert (warned in caplog.messages) is moved


def test_a_new_message_in_the_top_conversation_alone_moves_the_head():
    fetch = FakeList(_conversations(*"abcdefghijkl"), per_page=3)
    fetch.before[3] = lambda: fetch.rows[0].update(last_message_at="2026-11-01T13:00:00Z")
    stream = _stream(fetch, concurrency=2)

    list(stream)

    assert stream.report.reread  # same ids at the top, another cursor: compared by both
