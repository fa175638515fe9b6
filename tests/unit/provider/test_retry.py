"""Retry rules: Retry-After in both of its forms, and bounded backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from octopush_provider.exceptions import OctopushConfigError
from octopush_provider.retry import RetryPolicy, parse_retry_after

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),  # already past
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header, seconds):
    assert parse_retry_after(header, now=NOW.timestamp()) == seconds


def test_backoff_grows_and_is_capped_with_jitter():
    policy = RetryPolicy(backoff_base=1.0, backoff_max=8.0)

    delays = [policy.backoff(attempt) for attempt in range(1, 8)]

    assert 0.5 <= delays[0] <= 1.0
    assert 2.0 <= delays[2] <= 4.0
    assert all(4.0 <= delay <= 8.0 for delay in delays[4:])


def test_a_policy_without_attempts_is_refused():
    with pytest.raises(OctopushConfigError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
