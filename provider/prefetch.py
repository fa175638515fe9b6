"""Fetching pages ahead of the reader, on a few threads, in page order.

Workers claim page numbers in increasing order and keep fetching while the reader is busy with
earlier pages (parsing, writing files), so the connections never idle waiting for it. How far
ahead they may go starts small and doubles with each page taken: a short incremental read
sends few requests it will not use, a long one soon has every connection busy.

Memory stays bounded however long the read and whatever the server sends: by ``max_ahead``
pages, and by ``max_bytes`` of bodies read ahead, counted as they arrive (the page the reader
waits for is never held back, so the reader always moves). A worker reading a page ahead stops
reading while the bodies held would pass ``max_bytes``, until the reader takes pages; and no
page is claimed ahead while the largest body seen would not fit.

Two limits keep workers from fetching pages nobody needs: a proven end (an empty page, a 404 or
an error: nothing after it is claimed) and a guess (a short page: nothing after the next one is
fetched *ahead*). A guess never stops the page the reader waits for from being claimed, so a
list that grows while it is read cannot strand the reader. And the reader never waits blindly:
:meth:`Prefetcher.take` raises :class:`OctopushStalledReadError`, saying which page it wanted and
why no worker can deliver it, instead of hanging.

A concurrent read ends by fetching its first page again (see :mod:`octopush_provider.paging`),
which is only meaningful once every page it used has been answered. With ``closing``, the worker
that receives the last page up to a proven end fetches that page at once, while the reader is
still busy with the pages before it; :meth:`Prefetcher.closing_page` hands it over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Literal

from octopush_provider.exceptions import OctopushCancelledError, OctopushStalledReadError
from octopush_provider.page import Page
from octopush_provider.transport import metered, paused

FIRST_AHEAD = 4
# Bodies read ahead of the reader: one page just under the default max_response_bytes (beside
# the page the reader waits for, never held back), or 160 pages of 1,000 sandbox conversations
# (400 KB each), more than the workers ever fetch at once. Held pages cost about their body again
# once parsed. Measured on 30 pages of ~60 MB, extract and normalize: peak RSS 810 MiB at 64 MiB,
# 940-1,020 MiB at 128 MiB; the read alone 556 MiB and 631 MiB.
DEFAULT_MAX_BYTES_AHEAD = 64 * 1024 * 1024

_ClosingState = Literal["due", "fetching", "fetched"]


class Prefetcher:
    """Fetches pages ``start``, ``start + 1``, ... on ``workers`` threads; :meth:`take` in order.

    ``wait_limit`` bounds, in seconds, how long :meth:`take` waits for one page: longer than
    fetching a page can take under the client's retry policy. ``max_bytes`` bounds the bodies
    read ahead of the reader, in bytes.
    """

    def __init__(
        self,
        fetch: Callable[[int], Page],
        *,
        start: int,
        workers: int,
        max_ahead: int,
        wait_limit: float,
        max_bytes: int = DEFAULT_MAX_BYTES_AHEAD,
        closing: int | None = None,
    ) -> None:
        self._fetch = fetch
        self._condition = threading.Condition()
        self._next_claim = start
        self._wanted = start
        self._ahead = min(FIRST_AHEAD, max_ahead)
        self._max_ahead = max_ahead
        self._wait_limit = wait_limit
        self._last: int | None = None  # proven: no page after it exists (or it failed)
        self._failed: int | None = None  # the first page whose fetch raised
        self._guess: int | None = None  # likely: pages after it are past the end
        self._closed = False
        self._fetching: set[int] = set()
        self._max_bytes = max_bytes
        self._bytes: dict[int, int] = {}  # body bytes of each page being read or not yet taken
        self._largest = 0  # the largest body seen
        self._results: dict[int, Page | BaseException] = {}
        # The closing page: "due" until a worker claims it, then "fetching", then its result;
        # None when there is none, or when the reader decided without it.
        self._closing = closing
        self._closing_state: _ClosingState | None = "due" if closing is not None else None
        self._closing_result: Page | BaseException | None = None
        self._alive = workers
        self._threads = [
            threading.Thread(target=self._work, name=f"octopush-page-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def take(self, number: int) -> Page:
        """Wait for page ``number`` (taken in order); return it or raise what fetching it did."""
        with self._condition:
            self._wanted = number
            self._condition.notify_all()
            self._wait(
                lambda: number in self._results,
                check=lambda: self._check_deliverable(number),
                stalled=f"page {number}, longer than fetching a page can take, and no worker "
                "delivered it",
            )
            result = self._results.pop(number)
            self._bytes.pop(number, None)
            self._wanted = number + 1
            self._ahead = min(self._ahead * 2, self._max_ahead)
            self._condition.notify_all()
        if isinstance(result, BaseException):
            raise result
        return result

    def expect_end_after(self, number: int | None) -> None:
        """Guess that pages after ``number`` are past the end (None: no guess).

        Workers then fetch them only when the reader asks for them, one at a time.
        """
        with self._condition:
            self._guess = number
            self._condition.notify_all()

    def closing_page(self) -> Page | None:
        """The closing page, waiting for it if a worker is fetching it; None if none did.

        None also stops any worker from fetching it later: the reader fetches it itself then.
        """
        with self._condition:
            self._wait(
                lambda: self._closing_state != "fetching",
                check=lambda: None,
                stalled=f"page {self._closing} fetched again at the end, longer than fetching "
                "a page can take",
            )
            result, self._closing_state = self._closing_result, None
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        """Stop claiming pages; fetches under way finish on their own and are dropped."""
        with self._condition:
            self._closed = True
            self._results.clear()
            self._bytes.clear()
            self._condition.notify_all()

    def _wait(self, until: Callable[[], bool], *, check: Callable[[], None], stalled: str) -> None:
        """Wait on the condition (held) until ``until()``; past the wait limit, raise."""
        deadline = time.monotonic() + self._wait_limit
        while not until():
            check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OctopushStalledReadError(f"waited {self._wait_limit:g}s for {stalled}")
            self._condition.wait(remaining)

    def _check_deliverable(self, number: int) -> None:
        """Raise, naming the page and the reason, when no worker can ever deliver it."""
        reason = None
        if self._closed:
            reason = "the read was closed"
        elif self._last is not None and number > self._last:
            reason = f"page {self._last} ended the read (the end of the list, or an error)"
        elif number < self._next_claim and number not in self._fetching:
            reason = "it was already taken"
        elif self._alive == 0:
            reason = "every worker has exited"
        if reason is not None:
            raise OctopushStalledReadError(
                f"a concurrent read waited for page {number}, which no worker can deliver: {reason}"
            )

    def _claimable(self, number: int) -> bool:
        if self._last is not None and number > self._last:
            return False
        if number == self._wanted:  # the reader waits for it: never held back by a guess
            return True
        if self._guess is not None and number > self._guess:
            return False
        if sum(self._bytes.values()) + self._largest > self._max_bytes:
            return False
        return number < self._wanted + self._ahead

    def _held_back(self, number: int, size: int) -> bool:
        """Whether page ``number``, at ``size`` bytes, must wait for the reader to free some."""
        held = sum(self._bytes.values()) - self._bytes.get(number, 0)
        return number > self._wanted and not self._closed and held + size > self._max_bytes

    def _charge(self, number: int, size: int) -> None:
        """Note that page ``number`` holds ``size`` bytes; wait while they would not fit.

        The wait is on the reader, not the server: the request's deadline stops meanwhile.
        """
        with self._condition:
            # What it read so far stays counted while it waits: others must not read into it.
            if self._held_back(number, size):
                with paused():
                    while self._held_back(number, size):
                        self._condition.wait()
            if self._closed:
                raise OctopushCancelledError(f"the read was closed while page {number} was read")
            self._bytes[number] = size
            self._largest = max(self._largest, size)

    def _claim(self) -> int | None:
        with self._condition:
            # Waits until the reader takes a page or closes the read, which it always does.
            while not self._closed and (self._last is None or self._next_claim <= self._last):
                if self._claimable(self._next_claim):
                    self._next_claim += 1
                    self._fetching.add(self._next_claim - 1)
                    return self._next_claim - 1
                self._condition.wait()
            return None

    def _closing_due(self) -> bool:
        """Whether every page up to a proven end (not an error) has been answered."""
        return (
            self._closing_state == "due"
            and self._last is not None
            and self._failed != self._last
            and not any(number <= self._last for number in self._fetching)
        )

    def _fetch_closing(self) -> None:
        assert self._closing is not None
        result: Page | BaseException
        try:
            result = self._fetch(self._closing)
        except BaseException as error:  # raised by closing_page
            result = error
        with self._condition:
            self._closing_result, self._closing_state = result, "fetched"
            self._condition.notify_all()

    def _work(self) -> None:
        try:
            while (number := self._claim()) is not None:
                result: Page | BaseException
                try:
                    with metered(partial(self._charge, number)):
                        result = self._fetch(number)
                except BaseException as error:  # handed to the reader, raised in page order
                    result = error
                with self._condition:
                    self._fetching.discard(number)
                    if self._closed:
                        return
                    self._results[number] = result
                    if isinstance(result, BaseException):
                        self._bytes.pop(number, None)
                        self._failed = number if self._failed is None else min(self._failed, number)
                    if isinstance(result, BaseException) or result.end:
                        self._last = number if self._last is None else min(self._last, number)
                    # Pages fetched past a proven end answer nothing the reader may ask for.
                    if self._last is not None:
                        for later in [page for page in self._results if page > self._last]:
                            del self._results[later]
                            self._bytes.pop(later, None)
                    closing = self._closing_due()
                    if closing:
                        self._closing_state = "fetching"
                    self._condition.notify_all()
                # Handed over: a worker waiting to claim the next page must not keep it alive.
                del result
                if closing:
                    self._fetch_closing()
        finally:
            with self._condition:
                self._alive -= 1
                self._condition.notify_all()
