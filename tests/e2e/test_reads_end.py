"""Every read ends: concurrent reads of a list that grows or pages short, servers that loop.

The hangs these pin were races, so each case runs many times, at several concurrencies, under a
pytest timeout that turns a hang into a failure.
"""

from __future__ import annotations

import logging
import time

import pytest

from octopush_provider import served
from octopush_provider.exceptions import OctopushResponseError, OctopushStalledReadError
from octopush_provider.paging import StopReason
from octopush_provider.prefetch import Prefetcher
from tests.helpers import ids

RUNS = 15
CONCURRENCIES = [1, 2, 8]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("concurrency", CONCURRENCIES)
def test_new_conversations_before_the_third_request_end_the_read_with_every_one(
    make_sandbox, make_client, concurrency
):
    # The reproduction: 3 conversations, 2 a page, 2 new ones just before request 3.
    for _ in range(RUNS):
        sandbox = make_sandbox(conversations=3)
        before = set(ids(sandbox.store.snapshot()))
        sandbox.before_request(3, lambda store: store.add_new(2))
        client = make_client(sandbox, per_page=2, concurrency=concurrency)

        seen = set(ids(list(client.iter_conversations())))

        after = set(ids(sandbox.store.snapshot()))
        assert before <= seen <= after
        if concurrency > 1:  # the head moved: read again in order from the new head
            assert seen == after
        sandbox.stop()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("concurrency", CONCURRENCIES)
@pytest.mark.parametrize("sizes", [{2: 3}, {1: 4, 3: 1}, {2: 9, 3: 2, 4: 7}])
def test_pages_of_varying_sizes_are_read_to_the_end_in_order(
    make_sandbox, make_client, concurrency, sizes
):
    for _ in range(RUNS):
        sandbox = make_sandbox(conversations=95, page_sizes=sizes)
        client = make_client(sandbox, per_page=10, concurrency=concurrency)

        stream = client.iter_pages()
        rows = [row for page in stream for row in page]

        assert ids(rows) == ids(sandbox.store.snapshot())
        assert stream.report.stop_reason is StopReason.EMPTY_PAGE
        sandbox.stop()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("concurrency", CONCURRENCIES)
def test_a_last_page_that_grows_during_a_read_is_read_on(make_sandbox, make_client, concurrency):
    for _ in range(RUNS):
        sandbox = make_sandbox(conversations=45, churn_new=1)
        before = set(ids(sandbox.store.snapshot()))
        client = make_client(sandbox, per_page=10, concurrency=concurrency)

        seen = set(ids(list(client.iter_conversations())))

        assert before <= seen <= set(ids(sandbox.store.snapshot()))
        sandbox.stop()


@pytest.mark.timeout(60)
def test_waiting_for_a_page_no_worker_can_deliver_raises_saying_which_and_why(
    make_sandbox, make_client
):
    sandbox = make_sandbox(conversations=25)
    sandbox.add_fault("slow", page=4, delay=0.3)  # page 5, fetched too, answers first
    client = make_client(sandbox, per_page=10)
    prefetcher = Prefetcher(client.fetch_page, start=1, workers=2, max_ahead=8, wait_limit=30)

    assert [len(prefetcher.take(n).rows) for n in (1, 2, 3, 4)] == [10, 10, 5, 0]
    with pytest.raises(OctopushStalledReadError, match=r"page 5.*page 4 ended the read"):
        prefetcher.take(5)
    prefetcher.close()
    with pytest.raises(OctopushStalledReadError, match=r"page 5.*closed"):
        prefetcher.take(5)


@pytest.mark.timeout(60)
def test_a_wrong_guess_of_the_end_never_strands_the_reader(make_sandbox, make_client):
    sandbox = make_sandbox(conversations=35)
    client = make_client(sandbox, per_page=10)
    prefetcher = Prefetcher(client.fetch_page, start=1, workers=2, max_ahead=8, wait_limit=5)
    prefetcher.expect_end_after(1)

    sizes = [len(prefetcher.take(n).rows) for n in (1, 2, 3, 4, 5)]

    assert sizes == [10, 10, 10, 5, 0]
    prefetcher.close()


@pytest.mark.timeout(60)
def test_a_wait_for_a_page_has_a_deadline(make_sandbox, make_client):
    sandbox = make_sandbox(conversations=25)
    sandbox.add_fault("slow", page=1, delay=2.0)
    client = make_client(sandbox, per_page=10)
    prefetcher = Prefetcher(client.fetch_page, start=1, workers=1, max_ahead=2, wait_limit=0.2)

    with pytest.raises(OctopushStalledReadError, match=r"waited 0\.2s for page 1"):
        prefetcher.take(1)
    prefetcher.close()


@pytest.fixture(params=["set", "bits"])
def served_ids_kept_in(request, monkeypatch):
    """Each repeat-rule test twice: ids in an exact set, and in bit arrays from the start
    (as a pass past ``EXACT_IDS`` ids keeps them)."""
    if request.param == "bits":
        monkeypatch.setattr(served, "EXACT_IDS", 0)
    return request.param


@pytest.mark.timeout(60)
@pytest.mark.parametrize("concurrency", CONCURRENCIES)
@pytest.mark.parametrize("cycle", [1, 2, 3])
def test_a_server_serving_pages_in_a_loop_is_refused(
    make_sandbox, make_client, concurrency, cycle, served_ids_kept_in
):
    sandbox = make_sandbox(conversations=500, page_cycle=cycle)

    with pytest.raises(OctopushResponseError, match="ignore the 'page' parameter"):
        list(make_client(sandbox, per_page=10, concurrency=concurrency).iter_conversations())

    # Refused within a few pages of the first repeat, plus what was in flight.
    assert len(sandbox.requests) <= 3 * cycle + 2 + concurrency * 4


@pytest.mark.parametrize(("churn_new", "churn_bump"), [(3, 0), (0, 3), (2, 1)])
def test_a_busy_list_moving_by_a_third_of_a_page_per_request_is_read_to_the_end(
    make_sandbox, make_client, churn_new, churn_bump, served_ids_kept_in
):
    sandbox = make_sandbox(conversations=300, churn_new=churn_new, churn_bump=churn_bump)
    before = set(ids(sandbox.store.snapshot()))
    bumped_or_new = set()

    rows = list(make_client(sandbox, per_page=10).iter_conversations())

    for row in sandbox.store.snapshot():
        if row["number_of_messages"] > 1 and row["conversation_id"] in before:
            bumped_or_new.add(row["conversation_id"])
    assert before - bumped_or_new <= set(ids(rows))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("concurrency", CONCURRENCIES)
def test_max_pages_stops_a_server_that_serves_new_conversations_forever(
    make_sandbox, make_client, concurrency, caplog
):
    # page ignored, and a page of new conversations before every request: no end, ever.
    sandbox = make_sandbox(conversations=10, page_param="p", churn_new=10)
    client = make_client(sandbox, per_page=10, concurrency=concurrency, max_pages=5)

    with caplog.at_level(logging.WARNING):
        stream = client.iter_pages()
        pages = list(stream)

    assert len(pages) == 5
    assert len(set(ids([row for page in pages for row in page]))) > 20  # new ones, not a loop
    assert stream.report.stop_reason is StopReason.MAX_PAGES
    assert "stopped at max_pages=5" in caplog.text
    assert len(sandbox.requests) <= 5 + concurrency * 4


@pytest.mark.timeout(30)
def test_a_tabulate_that_finds_no_rows_leaves_the_end_to_the_client(make_sandbox, make_client):
    sandbox = make_sandbox(conversations=5)
    stream = make_client(sandbox, per_page=2).iter_pages(tabulate=lambda body: (None, []))

    rows = [row for page in stream for row in page]

    assert len(rows) == 5  # parsed, since the tabulate took nothing
    assert stream.report.stop_reason in (StopReason.EMPTY_PAGE, StopReason.NOT_FOUND)


@pytest.mark.timeout(60)
def test_the_first_page_is_fetched_again_once_the_last_is_in_while_the_reader_is_still_busy(
    make_sandbox, make_client
):
    sandbox = make_sandbox(conversations=75)
    stream = make_client(sandbox, per_page=10, concurrency=4).iter_pages()
    finished = []

    for _ in stream:
        time.sleep(0.05)  # a reader busy with each page (parsing, writing files)
        finished.append(time.monotonic())

    _, again = [r for r in sandbox.requests if r.page == 1]
    up_to_the_end = [r for r in sandbox.requests if 2 <= r.page <= 9]  # 9: the empty page
    assert max(r.received_at for r in up_to_the_end) <= again.received_at
    assert again.received_at < finished[-3]  # well before the reader got to the end
    assert stream.report.requests == len(sandbox.requests)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("concurrency", [2, 8])
def test_a_read_that_stops_before_the_end_fetches_the_first_page_again_itself(
    make_sandbox, make_client, concurrency
):
    sandbox = make_sandbox(conversations=500)
    sandbox.before_request(2, lambda store: store.add_new(3))  # the head moves during the read
    taken = []

    def caught_up(page):
        taken.append(page.number)
        return len(taken) >= 3

    stream = make_client(sandbox, per_page=10, concurrency=concurrency).iter_pages(
        stop_when=caught_up
    )
    list(stream)

    assert stream.report.reread  # the head was fetched again, after the reader stopped
    assert stream.report.stop_reason is StopReason.CAUGHT_UP


@pytest.mark.timeout(60)
def test_a_prefetcher_asked_for_its_closing_page_before_the_end_never_fetches_it(
    make_sandbox, make_client
):
    sandbox = make_sandbox(conversations=25)
    sandbox.add_fault("slow", page=3, delay=0.5)  # the end is not proven before it is in
    client = make_client(sandbox, per_page=10)
    prefetcher = Prefetcher(
        client.fetch_page, start=2, workers=2, max_ahead=8, wait_limit=5, closing=1
    )

    assert len(prefetcher.take(2).rows) == 10
    assert prefetcher.closing_page() is None  # not every page up to the end is in yet
    assert [len(prefetcher.take(n).rows) for n in (3, 4)] == [5, 0]
    prefetcher.close()

    assert [r.page for r in sandbox.requests].count(1) == 0
