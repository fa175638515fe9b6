"""The prefetcher (prefetch.py), over a fake page fetcher: no HTTP, no server."""

from __future__ import annotations

import io
import threading
import time
from types import SimpleNamespace

import requests

from octopush_provider.page import StopReason
from octopush_provider.prefetch import Prefetcher
from octopush_provider.transport import deadline, paused, read_body

MiB = 1024 * 1024


def test_pages_read_ahead_never_hold_more_bytes_than_the_budget():
    # 40 pages of 1 MiB read by 8 workers up to 16 pages ahead, with a budget of 4 MiB and a
    # reader slower than them. Bodies are read through read_body, which counts them as they come.
    lock = threading.Lock()
    read: dict[int, int] = {}  # bodies read in full and not yet taken, by page
    peaks: list[int] = []

    def fetch(number: int) -> SimpleNamespace:
        response = requests.Response()
        response.status_code, response.raw = 200, io.BytesIO(b"x" * MiB)
        body = read_body(response, limit=2 * MiB)
        with lock:
            read[number] = len(body)
            peaks.append(sum(size for page, size in read.items() if page > taken[0] + 1))
        return SimpleNamespace(end=StopReason.EMPTY_PAGE if number == 40 else None)

    taken = [0]
    prefetcher = Prefetcher(
        fetch, start=1, workers=8, max_ahead=16, wait_limit=30, max_bytes=4 * MiB
    )
    try:
        for number in range(1, 41):
            prefetcher.take(number)
            with lock:
                taken[0] = number
                read.pop(number, None)
            time.sleep(0.01)
    finally:
        prefetcher.close()

    # Ahead of the page the reader waits for (never held back): the budget's bytes, and one
    # page more while the reader's count lags its take. Bounded in pages alone: up to 16 MiB.
    assert max(peaks) <= 5 * MiB, max(peaks) / MiB


def test_a_request_waiting_on_the_reader_does_not_run_out_its_deadline():
    with deadline(0.3) as watch:
        with paused():
            time.sleep(0.5)  # a worker held back mid-body, waiting for the reader
        assert not watch.expired
        time.sleep(0.5)
    assert watch.expired  # the server's own time still counts
