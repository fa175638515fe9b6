"""Signs of life during the long phases of a run: a line every few seconds, not every page.

A phase (the pages of the list, the messages of the conversations read) counts as it goes; the
runner tells the slices of a first load, one line each. A line goes to the log only when
:data:`PROGRESS_EVERY_SECONDS` have passed since the last one, so a page or a conversation costs
one clock read, whatever the size of the account; the line says what is done, the rate and,
when the end is known, how long is left. The counts also go to the collector a dlt user passed
as ``dlt.pipeline(progress=...)`` (``log``, ``tqdm``, ``enlighten``), as counters named
``Octopush ...``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from dlt.common.configuration.container import Container
from dlt.common.pipeline import PipelineContext
from dlt.common.runtime.collector import NULL_COLLECTOR, Collector

from octopush_provider.page import Page

__all__ = ["PROGRESS_EVERY_SECONDS", "Progress", "duration", "estimate"]

logger = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 5.0

Clock = Callable[[], float]


def duration(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``2h 07m``: what a person reads at a glance."""
    whole = round(seconds)
    if whole < 60:
        return f"{max(seconds, 0):.1f}s" if seconds < 10 else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def estimate(*, done: int, due: int, rate: float) -> str:
    """``, about 3m 05s left`` while work is left and the rate is known, else nothing."""
    if due <= done or rate <= 0:
        return ""
    return f", about {duration((due - done) / rate)} left"


def _collector() -> Collector:
    """The collector of the active pipeline (a no-op without one: a resource read by hand)."""
    context = Container()[PipelineContext]
    if not context.is_active():
        return NULL_COLLECTOR
    collector: Collector = getattr(context.pipeline(), "collector", NULL_COLLECTOR)
    return collector


class Progress:
    """The counts of one phase: ``done`` units of ``due`` (None: the end is not known yet).

    ``requests`` counts the HTTP requests the units took. :meth:`add` logs a line when
    ``every`` seconds (:data:`PROGRESS_EVERY_SECONDS` by default) have passed since the last;
    the collector sees every call.
    """

    def __init__(
        self,
        what: str,
        *,
        unit: str,
        every: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.what = what
        self.unit = unit
        self.done = 0
        self.due: int | None = None
        self.requests = 0
        self.pages = 0
        self._every = PROGRESS_EVERY_SECONDS if every is None else every
        self._clock = clock
        self._started = self._last = clock()
        self._collector: Collector | None = None  # looked up on first use: no work to build
        self._counter = f"Octopush {what}"
        self._counted = False

    def expect(self, count: int) -> None:
        """``count`` more units are due."""
        if count <= 0:
            return
        self.due = (self.due or 0) + count
        if self._counted:
            self._collector_now().update(self._counter, inc=0, inc_total=count)
        else:
            self._collector_now().update(self._counter, inc=0, total=count)
            self._counted = True

    def add(self, count: int = 1, *, requests: int = 0) -> None:
        """``count`` units done with ``requests`` requests; a line if one is due."""
        self.done += count
        self.requests += requests
        self._collector_now().update(self._counter, inc=count)
        self._counted = True
        now = self._clock()
        if now - self._last >= self._every:
            self._last = now
            logger.info("%s", self.line(now))

    def _collector_now(self) -> Collector:
        if self._collector is None:
            self._collector = _collector()
        return self._collector

    def counting_pages(self, stop_when: Callable[[Page], bool]) -> Callable[[Page], bool]:
        """``stop_when``, counting each page read before it answers: the list's progress."""

        def counted(page: Page) -> bool:
            self.pages += 1
            self.add(len(page.rows), requests=page.attempts)
            return stop_when(page)

        return counted

    def line(self, now: float | None = None) -> str:
        """What is done, the rate and what is left, in one short line."""
        elapsed = (self._clock() if now is None else now) - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        done = f"{self.done:,} of {self.due:,}" if self.due is not None else f"{self.done:,}"
        pages = f"{self.pages:,} pages, " if self.pages else ""
        left = estimate(done=self.done, due=self.due, rate=rate) if self.due is not None else ""
        return (
            f"Octopush {self.what}: {pages}{done} {self.unit} ({self.requests:,} requests) "
            f"in {duration(elapsed)}, {rate:,.0f}/s{left}"
        )
