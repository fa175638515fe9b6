"""Signs of life during the long phases of a run: a line every few seconds, not every page.

A phase (the pages of the list, the messages of the conversations read) counts as it goes; the
runner tells the slices of a first load, one line each. A line goes to the log only when
:data:`PROGRESS_EVERY_SECONDS` have passed since the last one, so a page or a conversation costs
one clock read, whatever the size of the account; the line says what is done, the rate and,
when the end is known, how long is left. The counts also go to the collector a dlt user passed
as ``dlt.pipeline(progress=...)`` (``log``, ``tqdm``, ``enlighten``), as counters named
``Octopush ...``.

After the read, dlt normalises and loads, and reports its counts to the pipeline's collector
only. The runner watches those steps (:func:`watching_steps`): the collector is wrapped in a
:class:`StepWatch`, which passes every call on and keeps the step and its counts, and a thread
logs them every :data:`PROGRESS_EVERY_SECONDS` while a step lasts longer than that. The thread
is stopped and joined, within a bound, when the run ends, however it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dlt
from dlt.common.configuration.container import Container
from dlt.common.pipeline import PipelineContext
from dlt.common.runtime.collector import NULL_COLLECTOR, Collector

from octopush_provider.page import Page

__all__ = [
    "PROGRESS_EVERY_SECONDS",
    "Progress",
    "StepWatch",
    "duration",
    "estimate",
    "watching_steps",
]

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


# The counters dlt keeps besides the rows of each table (see dlt's Collector.update).
_FILES, _JOBS, _RESOURCES = "Files", "Jobs", "Resources"
# How long the end of a run waits for the progress thread, which wakes as soon as it is told to
# stop: a bound on the time it may take to finish writing a line.
_JOIN_SECONDS = 5.0


class StepWatch(Collector):
    """The collector dlt reports to during a run: it passes every call on to the pipeline's own
    collector (a dlt user's ``progress=``, else dlt's no-op) and keeps the step dlt is in, when it
    began, and its counts, for :meth:`line`.

    dlt's threads write whole numbers and a string; the progress thread only reads them, never
    a container, so it needs no lock (a count a line shows may be one update behind).
    """

    def __init__(self, inner: Collector, *, clock: Clock = time.monotonic) -> None:
        self.inner = inner
        self.step = ""
        self._clock = clock
        self._started = clock()
        self._rows = self._files = self._jobs_done = self._jobs_due = 0

    def update(  # noqa: PLR0917 (dlt's signature, called positionally by dlt)
        self,
        name: str,
        inc: int = 1,
        total: int | None = None,
        inc_total: int | None = None,
        message: str | None = None,
        label: str | None = None,
    ) -> None:
        if name == _FILES:
            self._files = total if total is not None else self._files + (inc_total or 0)
        elif name == _JOBS:
            if label is None:
                self._jobs_done += inc
            self._jobs_due = total if total is not None else self._jobs_due + (inc_total or 0)
        elif name != _RESOURCES and not name.startswith("Octopush "):
            self._rows += inc
        # dlt annotates its None defaults as int and str: its own calls pass None.
        self.inner.update(name, inc, total, inc_total, message, label)  # type: ignore[arg-type]

    def _start(self, step: str) -> None:
        self._rows = self._files = self._jobs_done = self._jobs_due = 0
        self._started = self._clock()
        self.step = step
        self.inner(step).__enter__()

    def _stop(self) -> None:
        self.step = ""
        self.inner.__exit__(None, None, None)  # type: ignore[arg-type]

    def on_start_trace(self, *args: Any) -> None:
        self.inner.on_start_trace(*args)

    def on_start_trace_step(self, *args: Any) -> None:
        self.inner.on_start_trace_step(*args)

    def on_end_trace_step(self, *args: Any) -> None:
        self.inner.on_end_trace_step(*args)

    def on_end_trace(self, *args: Any) -> None:
        self.inner.on_end_trace(*args)

    def line(self, *, at_least: float) -> str | None:
        """What dlt has done of its normalize or load step, once the step has lasted
        ``at_least`` seconds; None in other steps (the read logs its own lines)."""
        phase = self.step.split(" ", 1)[0].lower()
        elapsed = self._clock() - self._started
        if phase not in ("normalize", "load") or elapsed < at_least:
            return None
        took = duration(elapsed)
        if phase == "normalize":
            rate = self._rows / elapsed if elapsed > 0 else 0.0
            return (
                f"Octopush dlt normalize: {self._rows:,} rows of {_files(self._files)} "
                f"in {took}, {rate:,.0f}/s"
            )
        return f"Octopush dlt load: {self._jobs_done:,} of {self._jobs_due:,} jobs in {took}"


def _files(count: int) -> str:
    return "1 file" if count == 1 else f"{count:,} files"


def _beat(watch: StepWatch, stop: threading.Event, every: float) -> None:
    """A line every ``every`` seconds while a step that logs nothing of its own lasts."""
    last = -every
    while not stop.wait(every / 5):
        now = time.monotonic()
        if now - last < every:
            continue
        line = watch.line(at_least=every)
        if line is not None:
            last = now
            logger.info("%s", line)


@contextmanager
def watching_steps(pipeline: dlt.Pipeline, *, every: float | None = None) -> Iterator[StepWatch]:
    """While the body runs, dlt reports to a :class:`StepWatch`, and a thread logs its normalize
    and load steps every ``every`` seconds (:data:`PROGRESS_EVERY_SECONDS` by default).

    Afterwards the pipeline has its own collector back and the thread has ended (it is waited for
    a few seconds at most; it is a daemon, so it never holds the process).
    """
    interval = PROGRESS_EVERY_SECONDS if every is None else every
    inner = pipeline.collector
    watch = StepWatch(inner)
    stop = threading.Event()
    thread = threading.Thread(
        target=_beat, args=(watch, stop, interval), name="octopush-progress", daemon=True
    )
    pipeline.collector = watch
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        thread.join(timeout=_JOIN_SECONDS)
        pipeline.collector = inner
