"""A cancelled client (a killed or timed-out task) stops reading at once, on every thread."""

from __future__ import annotations

import time

import pytest

from octopush_provider.exceptions import OctopushCancelledError
from octopush_provider.retry import RetryPolicy

PER_PAGE = 10


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_cancelled_read_sends_no_request_after_those_in_flight(
    make_sandbox, make_client, concurrency
):
    sandbox = make_sandbox(conversations=500, latency=0.02)
    client = make_client(sandbox, per_page=PER_PAGE, concurrency=concurrency)
    sandbox.before_request(3, lambda _store: client.cancel())

    pages = []
    with pytest.raises(OctopushCancelledError, match="cancelled"):
        pages.extend(client.iter_pages())

    # The third request was answered, and at most the ones already sent beside it: 50 pages
    # would have been read without the cancel.
    assert len(pages) <= 2
    assert len(sandbox.requests) <= 3 + concurrency


def test_a_cancel_while_the_reader_catches_up_fails_the_read(make_sandbox, make_client):
    # Every page, and the first page fetched again, are in long before a slow reader gets to
    # them: the cancel still fails the read, so that nothing it read is committed.
    sandbox = make_sandbox(conversations=75)
    client = make_client(sandbox, per_page=PER_PAGE, concurrency=4)

    with pytest.raises(OctopushCancelledError, match="cancelled"):
        _read_slowly_and_cancel_at_page_3(client)

    assert [record.page for record in sandbox.requests].count(1) == 2  # the head, fetched again


def test_a_capped_read_cancelled_while_the_reader_catches_up_fails(make_sandbox, make_client):
    # A read that stops at max_pages fetches nothing more once its last page is in: the cancel
    # must still fail it.
    sandbox = make_sandbox(conversations=500)
    client = make_client(sandbox, per_page=PER_PAGE, concurrency=4, max_pages=5)
    taken: list[int] = []

    with pytest.raises(OctopushCancelledError, match="cancelled"):
        _read_slowly_and_cancel_at_page_3(client, taken)

    assert len(taken) == 5  # every page was in before the cancel


def _read_slowly_and_cancel_at_page_3(client, taken: list[int] | None = None) -> None:
    """Read like a reader busy with each page (0.1 s), cancelling after the third."""
    taken = [] if taken is None else taken
    for _ in client.iter_pages():
        taken.append(len(taken) + 1)
        time.sleep(0.1)
        if len(taken) == 3:
            client.cancel()


# The waits below are longer than pytest's timeout (300 s): a cancel that did not end them
# would fail the test by timing out, not by a slow pass.
def test_a_cancel_ends_a_wait_for_a_retry(make_sandbox, make_client):
    sandbox = make_sandbox(conversations=50)
    sandbox.add_fault("503", page=1, retry_after="1000")
    client = make_client(
        sandbox, retry=RetryPolicy(max_attempts=3, budget=5000.0), page_deadline=5000.0
    )
    sandbox.before_request(1, lambda _store: client.cancel())

    with pytest.raises(OctopushCancelledError):
        list(client.iter_pages())

    assert [record.page for record in sandbox.requests] == [1]


def test_a_cancel_ends_a_backoff_between_attempts(make_sandbox, make_client):
    sandbox = make_sandbox(conversations=50)
    sandbox.add_fault("500", page=1)
    client = make_client(
        sandbox,
        retry=RetryPolicy(max_attempts=3, backoff_base=1000.0, backoff_max=1000.0, budget=5000.0),
        page_deadline=5000.0,
    )
    sandbox.before_request(1, lambda _store: client.cancel())

    with pytest.raises(OctopushCancelledError):
        list(client.iter_pages())

    assert [record.page for record in sandbox.requests] == [1]
