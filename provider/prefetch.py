"""Fetching pages ahead of the reader, on a few threads, in page order.

Workers claim page numbers in increasing order and keep fetching while the reader is busy with
earlier pages (parsing, writing files), so the connections never idle waiting for it. How far
ahead they may go starts small and doubles with each page taken: a short incremental read
sends few requests it will not use, a long one soon has every connection busy. Memory stays
bounded by ``max_ahead`` pages, however long the read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from octopush_provider.page import Page

FIRST_AHEAD = 2


class Prefetcher:
    """Fetches pages ``start``, ``start + 1``, ... on ``workers`` threads; :meth:`take` in order."""

    def __init__(
        self,
        fetch: Callable[[int], Page],
        *,
        start: int,
        workers: int,
        max_ahead: int,
    ) -> None:
        self._fetch = fetch
        self._condition = threading.Condition()
        self._next_claim = start
        self._wanted = start
        self._ahead = min(FIRST_AHEAD, max_ahead)
        self._max_ahead = max_ahead
        self._last: int | None = None
        self._closed = False
        self._results: dict[int, Page | BaseException] = {}
        self._threads = [
            threading.Thread(target=self._work, name=f"octopush-page-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def take(self, number: int) -> Page:
        """Wait for page ``number`` (taken in order); return it or raise what fetching it did."""
        with self._condition:
            while number not in self._results:
                self._condition.wait()
            result = self._results.pop(number)
            self._wanted = number + 1
            self._ahead = min(self._ahead * 2, self._max_ahead)
            self._condition.notify_all()
        if isinstance(result, BaseException):
            raise result
        return result

    def stop_after(self, number: int) -> None:
        """No page after ``number`` is worth fetching (e.g. ``number`` is past the end)."""
        with self._condition:
            self._last = number if self._last is None else min(self._last, number)
            self._condition.notify_all()

    def close(self) -> None:
        """Stop claiming pages; fetches under way finish on their own and are dropped."""
        with self._condition:
            self._closed = True
            self._results.clear()
            self._condition.notify_all()

    def _claim(self) -> int | None:
        with self._condition:
            while True:
                if self._closed or (self._last is not None and self._next_claim > self._last):
                    return None
                if self._next_claim < self._wanted + self._ahead:
                    self._next_claim += 1
                    return self._next_claim - 1
                self._condition.wait()

    def _work(self) -> None:
        while (number := self._claim()) is not None:
            result: Page | BaseException
            try:
                result = self._fetch(number)
            except BaseException as error:  # handed to the reader, raised in page order
                result = error
            with self._condition:
                if self._closed:
                    return
                self._results[number] = result
                if isinstance(result, BaseException) or result.end:
                    self._last = number if self._last is None else min(self._last, number)
                self._condition.notify_all()
