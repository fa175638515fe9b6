"""The read guard's order verdict: what a later run must remember, and what it may forget."""

from __future__ import annotations

from datetime import UTC, datetime

from octopush_dlt.reading import ReadGuard
from octopush_provider.page import Page


def _page(number: int, *hours: int, first_new: int | None = 0) -> Page:
    """A page of conversations whose last_message_at are the given hours of 2026-11-01."""
    rows = [
        {
            "conversation_id": f"p{number}r{index}",
            "last_message_at": datetime(2026, 11, 1, hour, tzinfo=UTC),
        }
        for index, hour in enumerate(hours)
    ]
    return Page(number=number, rows=rows, first_new=first_new)


def _read(guard: ReadGuard, *pages: Page) -> None:
    for page in pages:
        guard.should_stop(page)


def test_an_ordered_read_leaves_no_verdict():
    guard = ReadGuard(start=None)
    _read(guard, _page(1, 23, 22), _page(2, 21, 20))
    assert (guard.disorder_seen, guard.order_failed) == (False, False)


def test_a_page_newer_than_the_one_before_in_the_last_pass_is_remembered():
    guard = ReadGuard(start=None)
    _read(guard, _page(1, 23, 22), _page(2, 21, 20), _page(1, 23, 22), _page(2, 23, 20))
    assert (guard.disorder_seen, guard.order_failed) == (True, True)


def test_a_concurrent_pass_read_again_in_order_forgets_what_moving_data_made_of_it():
    guard = ReadGuard(start=None)
    # The first pass's page 2 was answered after the list moved: its first new row (hour 22)
    # is newer than page 1's last (hour 21). The paging then reads the list again, in order.
    _read(guard, _page(1, 23, 21), _page(2, 22, 20), _page(1, 23, 22), _page(2, 21, 20))
    assert (guard.disorder_seen, guard.order_failed) == (True, False)


def test_disorder_within_a_page_is_remembered_whatever_pass_follows():
    guard = ReadGuard(start=None)
    _read(guard, _page(1, 23, 22), _page(2, 20, 21), _page(1, 23, 22), _page(2, 21, 20))
    assert (guard.disorder_seen, guard.order_failed) == (True, True)
