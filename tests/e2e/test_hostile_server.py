"""Answers no Octopush would send on purpose: huge bodies, gzip bombs, bytes dripped for ever.

A small real HTTP server on a socket plays the hostile part; the client must fail quickly and
clearly, with bounded memory, and retry only what another attempt may cure.
"""

from __future__ import annotations

import itertools
import logging
import time
import tracemalloc
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from octopush_dlt import octopush_source
from octopush_dlt.reading import ReadGuard
from octopush_provider.client import OctopushClient
from octopush_provider.exceptions import (
    OctopushConnectionError,
    OctopushResponseError,
    OctopushServerError,
)
from octopush_provider.messages import MessageParent
from octopush_provider.paging import StopReason
from octopush_provider.retry import RetryPolicy
from octopush_provider.sandbox import ConversationStore
from tests.hostile import Handler, HostileServer

MiB = 1024 * 1024
DRIP_INTERVAL = 0.1
DRIP_BYTES = 100  # a drip lasts 10 s at most, so a broken deadline fails rather than hangs


def _client(server: HostileServer, **options: Any) -> OctopushClient:
    settings: dict[str, Any] = {
        "api_login": "login@example.com",
        "api_key": "hostile-test-key",
        "base_url": server.base_url,
        "retry": RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.02),
    }
    return OctopushClient(**(settings | options))


def _headers(handler: Handler, **headers: str) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()


def _stream(handler: Handler, chunk: bytes, total: int) -> None:
    for _ in range(total // len(chunk)):
        handler.wfile.write(chunk)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """A valid JSON empty list, gzipped: 128 MiB of spaces in about 128 KiB on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    spaces = b" " * MiB
    parts = [packer.compress(b"[")]
    parts += [packer.compress(spaces) for _ in range(128)]
    parts += [packer.compress(b"]"), packer.flush()]
    return b"".join(parts)


def test_a_gzip_bomb_is_refused_at_the_default_cap_without_a_retry(hostile, gzip_bomb):
    server = hostile(
        lambda h: (
            _headers(h, Content_Encoding="gzip", Content_Length=str(len(gzip_bomb))),
            h.wfile.write(gzip_bomb),
        )
    )

    with pytest.raises(OctopushResponseError) as raised:
        _client(server).check_access()

    assert len(gzip_bomb) < MiB
    assert "more than 67108864 bytes" in str(raised.value)
    assert "max_response_bytes" in str(raised.value)
    assert server.requests == 1


def test_a_gzip_bomb_is_inflated_by_the_chunk_so_memory_stays_bounded(hostile, gzip_bomb):
    server = hostile(
        lambda h: (
            _headers(h, Content_Encoding="gzip", Content_Length=str(len(gzip_bomb))),
            h.wfile.write(gzip_bomb),
        )
    )
    client = _client(server, max_response_bytes=MiB)

    tracemalloc.start()
    try:
        with pytest.raises(OctopushResponseError, match="more than 1048576 bytes"):
            client.check_access()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 16 * MiB, f"peak {peak / MiB:.0f} MiB while reading a 128 MiB bomb"


def test_a_huge_body_announced_by_its_length_is_refused_before_reading_it(hostile):
    server = hostile(
        lambda h: (_headers(h, Content_Length=str(2 * 1024 * MiB)), _stream(h, b" " * MiB, 8 * MiB))
    )

    with pytest.raises(OctopushResponseError, match="page 1 with more than 67108864 bytes"):
        _client(server).check_access()

    assert server.requests == 1


def test_a_huge_body_of_unknown_length_is_cut_at_the_cap(hostile):
    def endless(handler: Handler) -> None:
        _headers(handler, Connection="close")  # no length: the body ends when the socket does
        handler.close_connection = True
        handler.wfile.write(b"[")
        _stream(handler, b" " * MiB, 256 * MiB)

    server = hostile(endless)

    with pytest.raises(OctopushResponseError, match="more than 4194304 bytes"):
        _client(server, max_response_bytes=4 * MiB).check_access()

    assert server.requests == 1


def _drip(handler: Handler, byte: bytes) -> None:
    sent = 0
    try:
        while sent < DRIP_BYTES:
            handler.wfile.write(byte)
            handler.wfile.flush()
            sent += 1
            time.sleep(DRIP_INTERVAL)
    finally:
        handler.server.dripped.append(sent)


def _drip_headers(handler: Handler) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
    _drip(handler, b"a")


def _drip_body(handler: Handler) -> None:
    _headers(handler, Content_Length=str(DRIP_BYTES + 2))
    handler.wfile.write(b"[")
    _drip(handler, b" ")
    handler.wfile.write(b"]")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("drip", [_drip_headers, _drip_body], ids=["headers", "body"])
def test_a_server_dripping_bytes_is_cut_off_at_the_deadline_and_retried(hostile, drip):
    server = hostile(drip)
    # Each byte comes well within the read timeout: only the deadline can end the request.
    client = _client(
        server,
        timeout=(2.0, 2.0),
        request_deadline=0.5,
        retry=RetryPolicy(max_attempts=2, backoff_base=0.01),
    )

    with pytest.raises(OctopushConnectionError) as raised:
        client.check_access()

    assert "within request_deadline=0.5s" in str(raised.value)
    assert "after 2 attempt(s)" in str(raised.value)
    assert server.requests == 2
    # The client hung up on the first drip long before the server was done with it.
    assert server.dripped[0] < DRIP_BYTES / 2


def test_a_deadline_long_enough_lets_a_slow_answer_through(hostile):
    def slow(handler: Handler) -> None:
        _headers(handler, Content_Length="2")
        handler.wfile.flush()
        time.sleep(0.3)
        handler.wfile.write(b"[]")

    server = hostile(slow)

    stream = _client(server, request_deadline=30.0).iter_pages()

    assert list(stream) == []
    assert server.requests == 1


def test_a_body_that_is_not_utf_8_is_retried_once_and_named(hostile):
    body = b'[{"conversation_id": "caf\xe9"}]'
    server = hostile(
        lambda h: (
            _headers(h, Content_Length=str(len(body))),
            h.wfile.write(body),
        )
    )

    with pytest.raises(OctopushResponseError) as raised:
        list(_client(server).iter_conversations())  # the client's policy: 3 attempts

    message = str(raised.value)
    assert "not JSON" in message and "UTF-8" in message
    assert f"application/json, {len(body)} bytes" in message
    assert "after 2 attempt(s)" in message
    assert server.requests == 2


def test_a_retry_after_date_in_the_past_falls_back_to_the_usual_backoff(hostile):
    def busy(handler: Handler) -> None:
        handler.server.times.append(time.monotonic())
        body = b'{"code": 1503, "message": "busy"}'
        handler.send_response(503)
        handler.send_header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    server = hostile(busy)
    client = _client(server, retry=RetryPolicy(max_attempts=3, backoff_base=0.4, backoff_max=0.4))

    with pytest.raises(OctopushServerError, match="after 3 attempt"):
        client.fetch_page(1)

    gaps = [later - earlier for earlier, later in itertools.pairwise(server.times)]
    assert len(gaps) == 2 and min(gaps) >= 0.2, gaps


def _short_body(*, hold: bool) -> Callable[[Handler], None]:
    """Announce 1000 bytes, send 10, then hold the connection open or close it."""

    def answer(handler: Handler) -> None:
        _headers(handler, Content_Length="1000")
        handler.wfile.write(b"[         ")
        handler.wfile.flush()
        if hold:
            time.sleep(3)
        handler.close_connection = True

    return answer


@pytest.mark.parametrize(
    ("hold", "then"),
    [(True, "nothing more came within the read timeout"), (False, "then it was closed")],
)
def test_a_body_shorter_than_its_content_length_says_so(hostile, hold, then):
    server = hostile(_short_body(hold=hold))
    client = _client(server, timeout=(1.0, 0.5), retry=RetryPolicy(max_attempts=2, backoff_base=0))

    with pytest.raises(OctopushConnectionError) as raised:
        client.fetch_page(1)

    message = str(raised.value)
    assert "page 1" in message and "cut short" in message, message
    assert " the 1000 bytes announced by Content-Length arrived" in message, message
    assert then in message and "check the base URL" not in message
    assert server.requests == 2


@pytest.mark.timeout(30)
def test_a_page_has_a_time_budget_that_its_retries_share(hostile):
    server = hostile(_drip_body)
    client = _client(
        server,
        timeout=(2.0, 2.0),
        request_deadline=0.5,
        page_deadline=1.2,
        retry=RetryPolicy(max_attempts=6, backoff_base=0.01, backoff_max=0.02),
    )
    started = time.monotonic()

    with pytest.raises(OctopushConnectionError) as raised:
        client.fetch_page(1)

    assert time.monotonic() - started < 2.0
    assert "page_deadline=1.2s" in str(raised.value)
    assert server.requests == 3  # 0.5 s, 0.5 s, then what is left of the 1.2 s


def test_the_figures_of_a_failed_read_count_every_request_sent(hostile, caplog):
    body = b"not json"
    server = hostile(lambda h: (_headers(h, Content_Length=str(len(body))), h.wfile.write(body)))
    stream = _client(server, retry=RetryPolicy(max_attempts=6, backoff_base=0.01)).iter_pages()

    with caplog.at_level(logging.INFO), pytest.raises(OctopushResponseError) as raised:
        list(stream)

    assert "after 2 attempt(s)" in str(raised.value)
    assert (stream.report.requests, stream.report.retries) == (2, 1)
    assert "retry 1 of 1 in" in caplog.text  # a body that is not JSON gets one retry, not five
    assert "read ended (failed): 0 pages, 0 conversations, 2 requests, 1 retries" in caplog.text


def _pages_of(rows: list[dict[str, Any]], size: int) -> Callable[[Handler], None]:
    """Serve ``rows`` in pages of ``size``, whatever ``per_page`` asks; bodies encoded up front."""
    bodies = [orjson.dumps(rows[start : start + size]) for start in range(0, len(rows), size)]

    def answer(handler: Handler) -> None:
        page = int(parse_qs(urlsplit(handler.path).query)["page"][0])
        body = bodies[page - 1] if page <= len(bodies) else b"[]"
        _headers(handler, Content_Length=str(len(body)))
        handler.wfile.write(body)

    return answer


def test_a_page_with_more_rows_than_per_page_asked_is_refused(hostile):
    server = hostile(_pages_of(ConversationStore.generate(150, seed=7).snapshot(), 150))

    with pytest.raises(OctopushResponseError) as raised:
        list(_client(server, per_page=100).iter_pages())

    assert "page 1 with 150 rows when per_page=100 was asked" in str(raised.value)
    assert server.requests == 1


@pytest.mark.timeout(120)
def test_pages_read_ahead_are_bounded_in_bytes_not_only_in_pages(hostile):
    # 20 pages of 100 conversations, each page about 4 MiB: a long last message on every row.
    rows = ConversationStore.generate(2000, seed=3).snapshot()
    for row in rows:
        row["last_message"] = "x" * 40_000
    server = hostile(_pages_of(rows, 100))
    client = _client(server, concurrency=8, max_bytes_ahead=8 * MiB)
    bodies_read, taken, ahead = [0], [0], []

    def note_body(body: bytes) -> None:  # called on each page's body once it is all in memory
        if len(body) > MiB:  # not the empty page past the end, nor page 1 fetched again
            bodies_read[0] += 1
            ahead.append(bodies_read[0] - taken[0])

    for page in client.iter_pages(tabulate=note_body):
        taken[0] += 1
        assert len(page) == 100
        time.sleep(0.05)  # a reader slower than the workers: they run ahead, to the bound

    assert taken[0] == 20
    # Read in full and not yet taken: the page the reader waits for (never held back), two
    # more in 8 MiB, and one more while the reader's count lags its take (the workers read on
    # as soon as a page is taken). Bounded in pages alone (8 workers x 4 pages ahead),
    # the workers read every page before the reader is done with the first ones.
    assert max(ahead) <= 4, ahead


def _dated(rows: list[dict[str, Any]], newest: datetime) -> list[dict[str, Any]]:
    """``rows`` with ``last_message_at`` a minute apart, newest first from ``newest``."""
    return [
        row | {"last_message_at": (newest - timedelta(minutes=n)).isoformat()}
        for n, row in enumerate(rows)
    ]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_page_newer_than_the_page_before_stops_no_incremental_read_early(hostile, concurrency):
    start = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    rows = ConversationStore.generate(300, seed=5).snapshot()
    # Page 1 reaches past the start (where an incremental read stops); page 2 is newer than it.
    pages = [
        _dated(rows[:100], start + timedelta(minutes=50)),
        _dated(rows[100:200], start + timedelta(days=1)),
        _dated(rows[200:], start - timedelta(days=1)),
    ]
    server = hostile(_pages_of([row for page in pages for row in page], 100))
    guard = ReadGuard(start=start)
    stream = _client(server, concurrency=concurrency).iter_pages(stop_when=guard.should_stop)

    kept = [row for page in stream for row in guard.keep(page)]

    assert guard.disorder_seen
    assert len(kept) == 51 + 100  # page 1 down to the start, and all of page 2
    assert stream.report.stop_reason is StopReason.EMPTY_PAGE


def test_an_ordered_incremental_read_costs_one_request_more_to_confirm_its_stop(hostile):
    start = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    rows = ConversationStore.generate(300, seed=5).snapshot()
    server = hostile(_pages_of(_dated(rows, start + timedelta(minutes=50)), 100))
    guard = ReadGuard(start=start)
    stream = _client(server).iter_pages(stop_when=guard.should_stop)

    kept = [row for page in stream for row in guard.keep(page)]

    assert not guard.disorder_seen
    assert len(kept) == 51
    assert stream.report.stop_reason is StopReason.CAUGHT_UP
    assert server.requests == 2  # page 1 reaches the start; page 2 proves the order across it


def test_a_server_serving_new_rows_past_the_page_ceiling_ends_the_read_with_an_error(hostile):
    server = hostile(_pages_of(ConversationStore.generate(100, seed=9).snapshot(), 10))
    stream = _client(server, per_page=10, page_ceiling=5).iter_pages()

    with pytest.raises(OctopushResponseError) as raised:
        list(stream)

    assert "served 5 pages without an end, up to page 6" in str(raised.value)
    assert "page_ceiling=5" in str(raised.value)
    assert server.requests == 6


def test_a_value_nested_beyond_what_parquet_takes_lands_as_json_text(
    hostile, make_pipeline, caplog
):
    deep: Any = "bottom"
    for _ in range(60):
        deep = {"in": deep}
    rows = ConversationStore.generate(30, seed=2).snapshot()
    rows[7] = rows[7] | {"audit": deep}
    server = hostile(_pages_of(rows, 100))
    pipeline = make_pipeline("octopush_deep")
    source = octopush_source(
        api_login="me@example.com",
        api_key="hostile-test-key",
        base_url=server.base_url,
        resources=["conversations"],
    )

    with caplog.at_level(logging.WARNING):
        pipeline.run(source)

    with pipeline.sql_client() as client:
        loaded = client.execute_sql(
            "SELECT conversation_id, audit FROM conversations WHERE audit IS NOT NULL"
        )
    assert loaded == [(rows[7]["conversation_id"], orjson.dumps(deep).decode())]
    assert "page 1, item 7: field 'audit' is nested more than 32 levels deep" in caplog.text


@pytest.mark.parametrize(("extra", "refused"), [(10, False), (11, True)])
def test_an_answer_of_more_messages_than_the_count_allows_is_refused_by_the_count_alone(
    hostile, extra, refused
):
    phone = "+33612345678"
    messages = [
        {"message_id": f"m{n}", "text": "hi", "user_identifiers": {"phone_number": phone}}
        for n in range(5 + extra)
    ]
    server = hostile(_pages_of(messages, 100))
    parent = MessageParent(conversation_id="c1", phone_number=phone, number_of_messages=5)

    (result,) = _client(server).read_messages([parent])

    assert (result.error is not None) is refused
    assert len(result.messages) == (0 if refused else 5 + extra)


def test_adjacent_rows_sharing_a_moment_are_not_disorder_within_or_across_pages(hostile):
    start = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    rows = _dated(ConversationStore.generate(300, seed=4).snapshot(), start + timedelta(hours=3))
    for first, second in [(10, 11), (99, 100)]:  # inside page 1, and across pages 1 and 2
        rows[second]["last_message_at"] = rows[first]["last_message_at"]
    server = hostile(_pages_of(rows, 100))
    guard = ReadGuard(start=start + timedelta(hours=2))
    stream = _client(server).iter_pages(stop_when=guard.should_stop)

    kept = [row for page in stream for row in guard.keep(page)]

    assert not guard.disorder_seen
    assert len(kept) == 61  # the hour of rows from three hours down to two, stopped early
    assert stream.report.stop_reason is StopReason.CAUGHT_UP
