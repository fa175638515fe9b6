"""Page-number paging over a list that moves while it is read.

The API has no cursor: pages are numbered slices of a list ordered newest-first, and activity
moves conversations to the top while we read. Read in order, that only shifts rows down into the
next page (a duplicate, merged away by primary key) and never hides one. Read concurrently, a
later page can be fetched before an earlier one, and a shift in between hides the rows that
crossed the boundary. So a concurrent read re-fetches the first page at the end (as soon as
every page up to the end is in, while the reader may still be busy with them): if the head of
the list did not move, the snapshot was consistent; if it moved, the pages are read again in
order, which is always safe.

The end is proven, never guessed: an empty page or a 404 past the first page. A page shorter
than the first only limits how far ahead concurrent reads look, since the server may cap
``per_page`` at any value, and a list that grows at its end while it is read is read on.

Every read ends. Rows served again within one pass (the in-order pass, or the concurrent one)
are only explained by rows moving down: each row that moves to the top pushes the rows below it
down by one, so a page repeats at most as many rows as moved above the read position since the
previous page. While that stays under a third of a page between requests, a pass repeats fewer
rows than half of the new ones it brings (plus one page, for the first shift). A pass that
repeats more, such as a server that ignores ``page`` and serves the same pages in any pattern
(A, A, A or A, B, A, B), is refused with :class:`OctopushResponseError` (the ids served are
kept in memory that stays small on large accounts: :mod:`octopush_provider.served`). A server
that serves new conversations forever is stopped by ``max_pages``, a safety cap that is off by
default, and by ``page_ceiling`` (100,000 pages unless told otherwise), which ends a read
with an error: every read has an end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace

from octopush_provider.endpoint import Endpoint
from octopush_provider.exceptions import (
    OctopushCancelledError,
    OctopushError,
    OctopushResponseError,
)
from octopush_provider.page import Page, Row, StopReason
from octopush_provider.prefetch import DEFAULT_MAX_BYTES_AHEAD, Prefetcher
from octopush_provider.served import ServedIds
from octopush_provider.settings import DEFAULT_PAGE_CEILING, FIRST_PAGE

__all__ = ["Page", "PageStream", "PagingReport", "StopCondition", "StopReason"]

logger = logging.getLogger(__name__)

# Pages a worker may fetch beyond what the reader has taken: enough to ride out the reader's
# pauses, few enough that memory does not depend on the size of the account.
PAGES_AHEAD_PER_WORKER = 4


@dataclass(kw_only=True)
class PagingReport:
    """Live figures of a read, for progress lines, summaries and XCom."""

    pages: int = 0
    rows: int = 0  # conversations, or messages: the rows the read's pages held
    requests: int = 0
    retries: int = 0
    reread: bool = False
    stop_reason: StopReason | None = None
    started_at: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0

    def count(self, attempts: int) -> None:
        """Count the requests sent for one page (``attempts`` of them, all but one retries)."""
        self.requests += attempts
        self.retries += max(0, attempts - 1)

    def add(self, other: PagingReport) -> None:
        """Count ``other``'s figures in this read's: a read made as part of this one."""
        self.pages += other.pages
        self.rows += other.rows
        self.requests += other.requests
        self.retries += other.retries
        self.elapsed += other.elapsed

    def as_dict(self) -> dict[str, object]:
        return {
            "pages": self.pages,
            "conversations": self.rows,  # the key summaries and XCom have always read
            "requests": self.requests,
            "retries": self.retries,
            "reread": self.reread,
            "stop_reason": self.stop_reason.value if self.stop_reason else None,
            "elapsed_seconds": round(self.elapsed, 3),
        }


StopCondition = Callable[[Page], bool]


def _head(page: Page, endpoint: Endpoint) -> list[tuple[object, object]]:
    """What a concurrent read compares its first page by: each row's id and cursor."""
    key, cursor = endpoint.id_field, endpoint.cursor_field
    return [(row[key], None if cursor is None else row[cursor]) for row in page.rows]


class PageStream:
    """Iterates the pages of one read; ``report`` tells how far it got and why it stopped.

    With ``confirm_stop``, a read whose ``stop_when`` holds reads one more page and asks again,
    so that a condition that checks the order across pages sees the page it would skip.
    ``endpoint`` says what is read: its rows' key (``message_id`` for messages), to notice a
    server that serves the same rows again, its cursor, to see the list move under a concurrent
    read, and the noun errors use; ``max_bytes_ahead`` bounds the bodies fetched ahead of the
    reader (see :mod:`octopush_provider.prefetch`); ``log_level`` is that of the line logged at
    the end (reads of one conversation's messages are too many to log each at INFO).
    ``cancelled`` says whether the client was cancelled: a read that was ends with
    :class:`OctopushCancelledError` even when every page it needed was in by then (fetched
    ahead, or the last before ``max_pages``), so that nothing it read is loaded.
    """

    def __init__(
        self,
        fetch: Callable[[int], Page],
        *,
        endpoint: Endpoint,
        concurrency: int = 1,
        stop_when: StopCondition | None = None,
        confirm_stop: bool = False,
        max_pages: int | None = None,
        page_ceiling: int = DEFAULT_PAGE_CEILING,
        page_wait: float,
        max_bytes_ahead: int = DEFAULT_MAX_BYTES_AHEAD,
        log_level: int = logging.INFO,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self._fetch_page = fetch
        self._cancelled = cancelled
        self._endpoint = endpoint
        self._id_field = endpoint.id_field
        self._log_level = log_level
        self._count_lock = threading.Lock()
        self._ended = False
        self._concurrency = concurrency
        self._stop_when = stop_when
        self._confirm_stop = confirm_stop
        self._confirming = False
        self._max_pages = max_pages
        self._page_ceiling = page_ceiling
        self._page_wait = page_wait
        self._max_bytes_ahead = max_bytes_ahead
        self._served = ServedIds()
        self._new = 0
        self._again = 0
        self._page_size = 0
        self.report = PagingReport()

    def __iter__(self) -> Iterator[list[Row]]:
        for page in self.pages():
            yield page.rows

    def pages(self) -> Iterator[Page]:
        """The pages themselves, as :meth:`__iter__` reads them."""
        try:
            yield from self._read()
            if self._cancelled():
                raise OctopushCancelledError("the read was cancelled before it ended")
        finally:
            with self._count_lock:
                self._ended = True
            self.report.elapsed = time.monotonic() - self.report.started_at
            logger.log(
                self._log_level,
                "Octopush read ended (%s): %d pages, %d %s, %d requests, %d retries in %.1fs",
                self.report.stop_reason or "failed",
                self.report.pages,
                self.report.rows,
                self._endpoint.noun,
                self.report.requests,
                self.report.retries,
                self.report.elapsed,
            )

    def _read(self) -> Iterator[Page]:
        first = self._fetch(FIRST_PAGE)
        if not (yield from self._begin_pass(first)):
            return
        if self._concurrency == 1 or self._confirming:  # one page to confirm: no read ahead
            yield from self._read_in_order(FIRST_PAGE + 1)
            return
        head = yield from self._read_ahead(FIRST_PAGE + 1, page_size=len(first.rows))
        if self.report.stop_reason is StopReason.MAX_PAGES:
            return
        if head is None:
            head = self._fetch(FIRST_PAGE)
        if _head(head, self._endpoint) != _head(first, self._endpoint):
            logger.warning(
                "Octopush %s moved during a concurrent read; reading the pages again in order "
                "so that none is missed",
                self._endpoint.noun,
            )
            self.report.reread = True
            if (yield from self._begin_pass(head)):
                yield from self._read_in_order(FIRST_PAGE + 1)

    def _begin_pass(self, first: Page) -> Generator[Page, None, bool]:
        """Start a pass over the list with its first page; returns whether to read on."""
        self._served = ServedIds()
        self._new = self._again = 0
        self._confirming = False
        first = self._take(first)
        if first.end:
            self.report.stop_reason = first.end
            return False
        yield first
        return not self._should_stop(first)

    def _read_in_order(self, start: int) -> Iterator[Page]:
        number = start
        while True:
            page = self._take(self._fetch(number))
            if page.end:
                self.report.stop_reason = page.end
                return
            yield page
            if self._should_stop(page):
                return
            number += 1

    def _read_ahead(self, start: int, *, page_size: int) -> Generator[Page, None, Page | None]:
        """Read on with up to ``concurrency`` requests in flight, yielding pages in order.

        Returns the first page fetched again once every page up to the end was answered, when
        the workers got there first (a capped read never fetches it: it would go unused).
        """
        prefetcher = Prefetcher(
            self._fetch,
            start=start,
            workers=self._concurrency,
            max_ahead=self._concurrency * PAGES_AHEAD_PER_WORKER,
            wait_limit=self._page_wait,
            max_bytes=self._max_bytes_ahead,
            closing=FIRST_PAGE if self._max_pages is None else None,
        )
        number = start
        try:
            while True:
                page = self._take(prefetcher.take(number))
                if page.end:
                    self.report.stop_reason = page.end
                    return prefetcher.closing_page()
                # After a short page the next one probably proves the end: don't fetch beyond it
                # ahead of time, but read on if the list grew meanwhile.
                short = len(page.rows) < page_size
                prefetcher.expect_end_after(number + 1 if short else None)
                page_size = max(page_size, len(page.rows))
                yield page
                if self._should_stop(page):
                    return prefetcher.closing_page()
                number += 1
        finally:
            prefetcher.close()

    def _fetch(self, number: int) -> Page:
        """Fetch a page and count its requests, failed ones too, from whichever thread fetched it.

        Requests answered after the read ended (pages fetched ahead, then dropped) are not
        counted: the figures stay those of the line logged at the end.
        """
        try:
            page = self._fetch_page(number)
        except OctopushError as error:
            self._count(error.attempts)
            raise
        self._count(page.attempts)
        return page

    def _count(self, attempts: int) -> None:
        with self._count_lock:
            if not self._ended:
                self.report.count(attempts)

    def _take(self, page: Page) -> Page:
        """Check the page's progress, then count it as read."""
        if page.end:
            return page
        ids = [row[self._id_field] for row in page.rows]
        page = replace(page, first_new=self._served.first_unseen(ids))
        self._check_progress(page)
        if self.report.pages >= self._page_ceiling:
            raise OctopushResponseError(
                f"Octopush served {self.report.pages} pages without an end, up to page "
                f"{page.number}: more than any account holds (page_ceiling={self._page_ceiling}). "
                "The API seems to serve new rows forever (check the base URL and path); if the "
                "account really is that large, raise page_ceiling"
            )
        self.report.pages += 1
        self.report.rows += len(page.rows)
        return page

    def _check_progress(self, page: Page) -> None:
        """Refuse a pass that repeats more rows than moving data explains (see the module)."""
        again = self._served.add([row[self._id_field] for row in page.rows])
        self._again += again
        self._new += len(page.rows) - again
        self._page_size = max(self._page_size, len(page.rows))
        if 2 * self._again > self._new + self._page_size:
            noun = self._endpoint.noun
            raise OctopushResponseError(
                f"Octopush served {self._again} {noun} again and {self._new} new ones "
                f"up to page {page.number}: more than {noun} moving to the top while "
                "they are read can explain. The API seems to ignore the 'page' parameter "
                "(check the base URL and path), or the list moves by more than a third of a "
                "page between two requests (ask for a larger per_page)"
            )

    def _should_stop(self, page: Page) -> bool:
        if self._stop_when is not None and self._stop_when(page):
            if self._confirm_stop and not self._confirming:
                # One more page, asked again: it proves the order across the page we stop on.
                self._confirming = True
                return False
            self.report.stop_reason = StopReason.CAUGHT_UP
            return True
        if self._max_pages is not None and self.report.pages >= self._max_pages:
            self.report.stop_reason = StopReason.MAX_PAGES
            logger.warning(
                "Octopush read stopped at max_pages=%d, a safety cap: %s on later pages were "
                "not read",
                self._max_pages,
                self._endpoint.noun,
            )
            return True
        return False
