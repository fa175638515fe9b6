"""The retry loop: a page is attempted until it is answered, an error is final, or a bound is hit.

Every page is bounded three ways: by the policy's ``max_attempts`` (fewer when a kind of failure
deserves fewer, such as a body that is not JSON), by its ``budget`` of seconds slept between
attempts, and by ``page_deadline``, the time the page may take, its attempts and waits included.
A wait after a 429, or after any answer with ``Retry-After``, holds the client's shared
:class:`~octopush_provider.retry.Throttle`, so that every thread waits, not only the one told;
other waits are the thread's own. A cancelled client stops the loop before each attempt, after
it, and during a wait. The error raised at the end counts the requests sent for the page and is
scrubbed of the API key.

An attempt is any callable of the seconds left of the page's deadline (see
:class:`~octopush_provider.attempt.Attempt`): the loop knows nothing of HTTP.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from octopush_provider.exceptions import OctopushCancelledError, OctopushError
from octopush_provider.page import Page
from octopush_provider.redaction import scrub_chain
from octopush_provider.retry import RetryPolicy, Throttle, Transient

__all__ = ["RetryLoop"]

logger = logging.getLogger(__name__)


class RetryLoop:
    """Runs the attempts at a page under a retry policy, a page deadline and a client's throttle.

    Args:
        page_deadline: the seconds a page may take, attempts and waits included.
        throttle: the gate shared by the client's threads.
        cancelled: set when the client is cancelled.
        secrets: texts no error may show (the API key).
    """

    def __init__(
        self,
        *,
        page_deadline: float,
        throttle: Throttle,
        cancelled: threading.Event,
        secrets: tuple[str, ...],
    ) -> None:
        self.page_deadline = page_deadline
        self._throttle = throttle
        self._cancelled = cancelled
        self._secrets = secrets

    def page_wait(self, retry: RetryPolicy) -> float:
        """The longest a page can take: its deadline, plus one wait at the shared throttle."""
        return self.page_deadline + retry.budget + 1.0

    def fetch(self, number: int, attempt: Callable[[float], Page], *, retry: RetryPolicy) -> Page:
        """Page ``number``, from the first of ``attempt(seconds_left)`` that answers it."""
        slept = 0.0
        started = time.monotonic()
        ends_at = started + self.page_deadline
        failed: OctopushError | None = None  # the last attempt's error, once one failed
        for tried in range(1, retry.max_attempts + 1):
            self._throttle.wait(self._cancelled)
            self._raise_if_cancelled(number)
            if failed is not None and time.monotonic() >= ends_at:  # held by another's 429
                error = failed
                error.args = (f"{error} (page_deadline={self.page_deadline:g}s reached)",)
                break
            try:
                page = attempt(ends_at - time.monotonic())
                self._raise_if_cancelled(number)
                return page if tried == 1 else replace(page, attempts=tried)
            except Transient as failure:
                error = failed = failure.error
                delay = retry.delay(tried, failure.retry_after)
                attempts = min(retry.max_attempts, failure.attempts or retry.max_attempts)
                if tried >= attempts or slept + delay > retry.budget:
                    break
                if time.monotonic() + delay >= ends_at:
                    error.args = (f"{error} (page_deadline={self.page_deadline:g}s reached)",)
                    break
                logger.warning(
                    "Octopush page %d: %s; retry %d of %d in %.1fs",
                    number,
                    error,
                    tried,
                    attempts - 1,
                    delay,
                )
                if failure.retry_after is not None or getattr(error, "status_code", 0) == 429:
                    self._throttle.hold(delay)
                else:
                    self._cancelled.wait(delay)
                slept += delay
            except OctopushError as final:
                final.attempts = tried
                scrub_chain(final, secrets=self._secrets)
                raise
        error.args = (
            f"{error} (gave up on page {number} after {tried} attempt(s) "
            f"in {time.monotonic() - started:.1f}s)",
        )
        error.attempts = tried
        scrub_chain(error, secrets=self._secrets)
        raise error

    def _raise_if_cancelled(self, number: int) -> None:
        if self._cancelled.is_set():
            raise OctopushCancelledError(f"the read was cancelled before page {number} was read")
