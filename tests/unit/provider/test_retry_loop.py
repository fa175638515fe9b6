"""The retry loop (retry_loop.py), driven by fake attempts: no HTTP, no server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from octopush_provider.exceptions import (
    OctopushCancelledError,
    OctopushConnectionError,
    OctopushRequestError,
    OctopushServerError,
)
from octopush_provider.page import Page
from octopush_provider.retry import RetryPolicy, Throttle, Transient
from octopush_provider.retry_loop import RetryLoop

KEY = "the-api-key-1234"
QUICK = RetryPolicy(max_attempts=4, backoff_base=0.001, backoff_max=0.002, budget=5.0)


class RecordingThrottle(Throttle):
    def __init__(self) -> None:
        super().__init__()
        self.holds: list[float] = []

    def hold(self, seconds: float) -> None:
        self.holds.append(seconds)
        super().hold(seconds)


def _loop(
    *, page_deadline: float = 60.0, throttle: Throttle | None = None, cancelled=None
) -> RetryLoop:
    return RetryLoop(
        page_deadline=page_deadline,
        throttle=throttle or Throttle(),
        cancelled=cancelled or threading.Event(),
        secrets=(KEY,),
    )


def _attempts(*outcomes: Exception | Page) -> tuple[Callable[[float], Page], list[float]]:
    """An attempt that plays ``outcomes`` in turn; also returns the seconds it was given."""
    given: list[float] = []
    queue = list(outcomes)

    def attempt(seconds: float) -> Page:
        given.append(seconds)
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return attempt, given


def _reset() -> Transient:
    return Transient(OctopushConnectionError("connection reset"))


def test_a_page_answered_on_the_third_attempt_counts_three_attempts(caplog):
    page = Page(number=7, rows=[{"conversation_id": "c1"}])
    attempt, given = _attempts(_reset(), _reset(), page)

    with caplog.at_level(logging.WARNING, logger="octopush_provider.retry_loop"):
        got = _loop().fetch(7, attempt, retry=QUICK)

    assert (got.rows, got.attempts) == ([{"conversation_id": "c1"}], 3)
    assert len(given) == 3
    assert "Octopush page 7: connection reset; retry 1 of 3 in 0.0s" in caplog.messages
    assert "Octopush page 7: connection reset; retry 2 of 3 in 0.0s" in caplog.messages


def test_a_page_answered_at_once_is_returned_as_the_attempt_made_it():
    page = Page(number=1, rows=[])
    attempt, _ = _attempts(page)

    assert _loop().fetch(1, attempt, retry=QUICK) is page


def test_a_final_error_is_raised_at_once_counting_one_attempt():
    attempt, given = _attempts(OctopushRequestError("bad request", status_code=400))

    with pytest.raises(OctopushRequestError) as raised:
        _loop().fetch(3, attempt, retry=QUICK)

    assert (len(given), raised.value.attempts) == (1, 1)


def test_a_page_that_keeps_failing_gives_up_after_max_attempts_saying_so():
    attempt, given = _attempts(*(_reset() for _ in range(4)))

    with pytest.raises(OctopushConnectionError) as raised:
        _loop().fetch(5, attempt, retry=QUICK)

    assert len(given) == 4
    assert raised.value.attempts == 4
    assert str(raised.value).startswith(
        "connection reset (gave up on page 5 after 4 attempt(s) in "
    )


def test_a_failure_that_deserves_fewer_attempts_stops_below_the_policy():
    attempt, given = _attempts(
        *(Transient(OctopushConnectionError("not JSON"), attempts=2) for _ in range(4))
    )

    with pytest.raises(OctopushConnectionError):
        _loop().fetch(2, attempt, retry=QUICK)

    assert len(given) == 2


def test_a_retry_after_beyond_the_budget_ends_the_retries_at_once():
    busy = OctopushServerError("busy", status_code=503)
    attempt, given = _attempts(Transient(busy, retry_after=60.0), Page(number=1, rows=[]))

    with pytest.raises(OctopushServerError):
        _loop().fetch(1, attempt, retry=RetryPolicy(max_attempts=4, budget=10.0))

    assert len(given) == 1


def test_a_wait_that_would_pass_the_page_deadline_ends_the_retries_naming_it():
    attempt, given = _attempts(Transient(OctopushConnectionError("slow"), retry_after=0.5))

    with pytest.raises(OctopushConnectionError, match=r"\(page_deadline=0.2s reached\)"):
        _loop(page_deadline=0.2).fetch(1, attempt, retry=QUICK)

    assert len(given) == 1
    assert 0 < given[0] <= 0.2  # the attempt was told how long it had left


def test_a_429_holds_the_shared_throttle_and_another_failure_does_not():
    throttle = RecordingThrottle()
    too_many = Transient(OctopushServerError("429", status_code=429))
    attempt, _ = _attempts(_reset(), too_many, Page(number=1, rows=[]))

    _loop(throttle=throttle).fetch(1, attempt, retry=QUICK)

    assert len(throttle.holds) == 1  # after the 429 only: the reset waited on its own thread


def test_a_cancelled_loop_sends_no_attempt():
    cancelled = threading.Event()
    cancelled.set()
    attempt, given = _attempts(Page(number=4, rows=[]))

    with pytest.raises(OctopushCancelledError, match="cancelled before page 4 was read"):
        _loop(cancelled=cancelled).fetch(4, attempt, retry=QUICK)

    assert given == []


def test_a_cancel_during_a_backoff_ends_the_wait():
    cancelled = threading.Event()
    attempt, given = _attempts(_reset(), Page(number=1, rows=[]))
    slow = RetryPolicy(max_attempts=3, backoff_base=30.0, backoff_max=30.0, budget=100.0)
    threading.Timer(0.1, cancelled.set).start()
    started = time.monotonic()

    with pytest.raises(OctopushCancelledError):
        _loop(cancelled=cancelled).fetch(1, attempt, retry=slow)

    assert time.monotonic() - started < 5
    assert len(given) == 1


def test_the_api_key_is_masked_in_the_errors_chained_to_the_one_raised():
    final = OctopushRequestError("refused", status_code=400)
    final.__cause__ = ValueError(f"https://api.example.com/?api-key={KEY}")
    attempt, _ = _attempts(final)

    with pytest.raises(OctopushRequestError) as raised:
        _loop().fetch(1, attempt, retry=QUICK)

    assert str(raised.value.__cause__) == "https://api.example.com/?api-key=***"


def test_the_longest_wait_for_a_page_is_its_deadline_its_budget_and_a_second():
    assert _loop(page_deadline=300.0).page_wait(RetryPolicy(budget=120.0)) == 421.0


def test_a_retry_held_at_the_throttle_past_the_page_deadline_is_not_sent():
    throttle = Throttle()

    def reset_while_another_thread_is_told_429(seconds: float) -> Page:
        throttle.hold(0.5)
        raise Transient(OctopushConnectionError("connection reset"))

    attempt, given = _attempts(Page(number=1, rows=[]))
    calls = iter([reset_while_another_thread_is_told_429, attempt])

    def first_then_the_rest(seconds: float) -> Page:
        return next(calls)(seconds)

    with pytest.raises(OctopushConnectionError, match=r"page_deadline=0.3s reached"):
        _loop(page_deadline=0.3, throttle=throttle).fetch(1, first_then_the_rest, retry=QUICK)
    assert given == []  # no request sent with no time left
