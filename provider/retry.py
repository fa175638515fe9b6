"""When and how long to wait before trying a request again: the only retry rules in the project.

A :class:`RetryPolicy` bounds both the number of attempts and the total time spent waiting, so a
failing API can never hold a task forever. A :class:`Throttle` is shared by the threads of one
client: when the API says 429, every thread waits, not only the one that was told. An attempt
that failed in a way another may not raises :class:`Transient`. The loop that applies these
rules to a page is :mod:`octopush_provider.retry_loop`.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from octopush_provider.exceptions import OctopushConfigError, OctopushError


class Transient(Exception):
    """An attempt failed in a way that another attempt may not.

    ``error`` is what is raised when no attempt is left; ``retry_after`` the server's
    ``Retry-After`` in seconds, if it sent one; ``attempts`` caps the attempts this kind of
    failure deserves, below the retry policy's.
    """

    def __init__(
        self,
        error: OctopushError,
        *,
        retry_after: float | None = None,
        attempts: int | None = None,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.attempts = attempts


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter, honouring ``Retry-After``.

    ``max_attempts`` counts the first try. ``budget`` caps the seconds slept over all retries of
    one request; a ``Retry-After`` longer than what is left of it ends the retries at once.
    """

    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    budget: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise OctopushConfigError("retry max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_max < 0 or self.budget < 0:
            raise OctopushConfigError("retry backoff_base, backoff_max and budget must be >= 0")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), with full jitter."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The server's ``Retry-After`` when it gave one, never less than our own backoff.

        A ``Retry-After`` of 0 (or a date already past) would have a failing server hammered
        with every attempt at once: our backoff is the floor.
        """
        return max(retry_after or 0.0, self.backoff(attempt))


NO_RETRY = RetryPolicy(max_attempts=1)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), if usable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


class Throttle:
    """A gate shared by a client's threads, closed until a moment the API asked us to wait for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_at = 0.0

    def hold(self, seconds: float) -> None:
        """Keep every request back for ``seconds`` from now (never shortens a longer hold)."""
        with self._lock:
            self._open_at = max(self._open_at, time.monotonic() + seconds)

    def wait(self, cancelled: threading.Event) -> float:
        """Block until the gate opens or ``cancelled`` is set; returns the seconds waited."""
        with self._lock:
            pause = self._open_at - time.monotonic()
        if pause > 0:
            cancelled.wait(pause)
            return pause
        return 0.0
