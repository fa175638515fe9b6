"""The client core against the sandbox over real HTTP: paging, retries, errors, secrets."""

from __future__ import annotations

import logging
import socket
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import pairwise
from urllib.parse import quote, quote_plus

import pytest

from octopush_provider.client import OctopushClient
from octopush_provider.exceptions import (
    OctopushAuthError,
    OctopushConfigError,
    OctopushConnectionError,
    OctopushRequestError,
    OctopushResponseError,
    OctopushServerError,
)
from octopush_provider.paging import StopReason
from octopush_provider.retry import RetryPolicy
from octopush_provider.sandbox import DEFAULT_API_KEY, DEFAULT_API_LOGIN, READ_ONLY_LOGIN
from tests.helpers import ids

FAULTS = [
    ("429", None),
    ("429", "0"),
    ("500", None),
    ("502", None),
    ("503", None),
    ("html-502", None),
    ("truncated", None),
    ("reset", None),
]


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize(("kind", "retry_after"), FAULTS)
def test_every_fault_is_retried_and_every_conversation_arrives_once(
    make_sandbox, make_client, kind, retry_after, concurrency
):
    sandbox = make_sandbox(conversations=230)
    sandbox.add_fault(kind, page=2, times=2, retry_after=retry_after)
    client = make_client(sandbox, concurrency=concurrency)

    stream = client.iter_pages()
    rows = [row for page in stream for row in page]

    assert ids(rows) == ids(sandbox.store.snapshot())
    faulted = [r for r in sandbox.requests if r.fault == kind]
    assert [r.page for r in faulted] == [2, 2]
    assert stream.report.retries == 2
    assert Counter(r.page for r in sandbox.requests)[2] == 3


def test_a_slow_answer_times_out_and_is_retried(make_sandbox, make_client):
    sandbox = make_sandbox(conversations=150)
    sandbox.add_fault("slow", page=1, delay=3.0)
    # A read timeout that a busy CI machine's ordinary answers never come near.
    client = make_client(sandbox, timeout=(1.0, 1.0))

    stream = client.iter_pages()
    rows = [row for page in stream for row in page]

    assert ids(rows) == ids(sandbox.store.snapshot())
    assert stream.report.retries == 1


def test_retry_after_is_honoured_across_threads(make_sandbox, make_client):
    sandbox = make_sandbox(conversations=600)
    sandbox.add_fault("429", page=3, retry_after="1")
    client = make_client(sandbox, concurrency=4, per_page=50)

    stream = client.iter_pages()
    rows = [row for page in stream for row in page]

    assert len(rows) == 600
    assert stream.report.elapsed >= 1.0


def test_retries_are_bounded_and_the_last_error_is_raised(make_sandbox, make_client):
    sandbox = make_sandbox()
    sandbox.add_fault("503", page=1, times=100)
    client = make_client(sandbox, retry=RetryPolicy(max_attempts=3, backoff_base=0.01))

    with pytest.raises(OctopushServerError) as raised:
        list(client.iter_conversations())

    assert raised.value.status_code == 503
    assert "after 3 attempt(s)" in str(raised.value)
    assert len(sandbox.requests) == 3


def test_a_retry_after_beyond_the_budget_gives_up_at_once(make_sandbox, make_client):
    sandbox = make_sandbox()
    sandbox.add_fault("429", page=1, retry_after="3600")
    client = make_client(sandbox, retry=RetryPolicy(budget=60.0))

    with pytest.raises(OctopushServerError, match="429"):
        list(client.iter_conversations())

    assert len(sandbox.requests) == 1


@pytest.mark.parametrize("past_end", ["empty", "404"])
def test_a_capped_per_page_loses_nothing_and_reads_one_page_past_the_end(
    make_sandbox, make_client, past_end
):
    sandbox = make_sandbox(conversations=250, max_per_page=40, past_end=past_end)
    client = make_client(sandbox, per_page=100)

    stream = client.iter_pages()
    rows = [row for page in stream for row in page]

    assert ids(rows) == ids(sandbox.store.snapshot())
    assert [r.page for r in sandbox.requests] == list(range(1, 9))  # 7 pages + the proof
    assert {r.per_page for r in sandbox.requests} == {40}
    expected = StopReason.EMPTY_PAGE if past_end == "empty" else StopReason.NOT_FOUND
    assert stream.report.stop_reason is expected


@pytest.mark.parametrize("past_end", ["empty", "404"])
def test_an_exact_multiple_of_the_page_size_ends_on_the_next_page(
    make_sandbox, make_client, past_end
):
    sandbox = make_sandbox(conversations=200, past_end=past_end)
    client = make_client(sandbox)

    rows = list(client.iter_conversations())

    assert len(rows) == 200
    assert [r.page for r in sandbox.requests] == [1, 2, 3]


@pytest.mark.parametrize("past_end", ["empty", "404"])
@pytest.mark.parametrize("concurrency", [1, 8])
def test_an_account_without_conversations_is_empty_not_an_error(
    make_sandbox, make_client, past_end, concurrency
):
    sandbox = make_sandbox(conversations=0, past_end=past_end)
    client = make_client(sandbox, concurrency=concurrency)

    stream = client.iter_pages()

    assert list(stream) == []
    assert stream.report.stop_reason is StopReason.NO_CONVERSATIONS
    assert len(sandbox.requests) == 1


@pytest.mark.parametrize("concurrency", [1, 8])
def test_a_404_on_page_1_from_a_wrong_path_is_an_error_naming_the_url(
    sandbox, make_client, concurrency
):
    client = make_client(sandbox, path="v2/conversations/list", concurrency=concurrency)

    with pytest.raises(OctopushRequestError) as raised:
        list(client.iter_pages())

    message = str(raised.value)
    assert f"404 for page 1 of {sandbox.base_url}/v2/conversations/list" in message
    assert "Unknown endpoint" in message and "check the base URL and path" in message
    assert DEFAULT_API_KEY not in message
    assert len(sandbox.requests) == 1


def test_concurrent_reads_return_everything_once_in_order(make_sandbox, make_client):
    sandbox = make_sandbox(conversations=1234)
    client = make_client(sandbox, concurrency=8, per_page=50)

    stream = client.iter_pages()
    rows = [row for page in stream for row in page]

    assert ids(rows) == ids(sandbox.store.snapshot())
    assert stream.report.reread is False
    # 25 pages, the proof of the end, the head check, and at most 7 requests already in flight.
    assert 27 <= len(sandbox.requests) <= 27 + 7


@pytest.mark.parametrize("concurrency", [1, 8])
def test_data_moving_during_a_read_never_hides_a_conversation(
    make_sandbox, make_client, concurrency
):
    sandbox = make_sandbox(conversations=1000, latency=0.002)
    before = set(ids(sandbox.store.snapshot()))
    for n in range(2, 12):
        sandbox.before_request(n, lambda store: (store.add_new(3), store.bump(2)))
    client = make_client(sandbox, concurrency=concurrency, per_page=50)

    stream = client.iter_pages()
    seen = {row["conversation_id"] for page in stream for row in page}

    bumped_or_new = {
        row["conversation_id"]
        for row in sandbox.store.snapshot()
        if row["number_of_messages"] > 1 or row["conversation_id"] not in before
    }
    # Every conversation that did not move is read; the moved ones are newer than anything
    # read before they moved, so the next incremental run reads them.
    assert before - bumped_or_new <= seen
    assert stream.report.reread is (concurrency > 1)


def test_wrong_key_fails_at_once_without_echoing_the_key(make_sandbox, caplog):
    sandbox = make_sandbox()
    secret = "wrong-key-5f1e9c"
    client = OctopushClient(api_login=DEFAULT_API_LOGIN, api_key=secret, base_url=sandbox.base_url)

    with caplog.at_level(logging.DEBUG), pytest.raises(OctopushAuthError) as raised:
        list(client.iter_conversations())

    assert raised.value.status_code == 401
    assert "check the API login and API key" in str(raised.value)
    assert len(sandbox.requests) == 1
    assert secret not in str(raised.value) + caplog.text + repr(client)


def test_forbidden_login_fails_at_once_with_its_own_message(make_sandbox, caplog):
    sandbox = make_sandbox()
    client = OctopushClient(
        api_login=READ_ONLY_LOGIN, api_key=DEFAULT_API_KEY, base_url=sandbox.base_url, where="X"
    )

    with caplog.at_level(logging.DEBUG), pytest.raises(OctopushAuthError) as raised:
        list(client.iter_conversations())

    assert raised.value.forbidden
    assert "may not read conversations (403)" in str(raised.value)
    assert "of X" in str(raised.value)
    assert len(sandbox.requests) == 1
    assert DEFAULT_API_KEY not in str(raised.value) + caplog.text


def test_bad_request_is_not_retried(make_sandbox, make_client):
    sandbox = make_sandbox()
    sandbox.add_fault("400", page=1, times=5)

    with pytest.raises(OctopushRequestError) as raised:
        list(make_client(sandbox).iter_conversations())

    assert raised.value.status_code == 400
    assert len(sandbox.requests) == 1


def test_a_body_that_is_not_json_once_is_retried(make_sandbox, make_client):
    sandbox = make_sandbox(conversations=230)
    sandbox.add_fault("html", page=2)

    stream = make_client(sandbox).iter_pages()
    rows = [row for page in stream for row in page]

    assert ids(rows) == ids(sandbox.store.snapshot())
    assert stream.report.retries == 1


def test_the_same_body_that_is_not_json_twice_fails_saying_what_came_back(
    make_sandbox, make_client
):
    sandbox = make_sandbox()
    sandbox.add_fault("html", page=1, times=10)

    with pytest.raises(OctopushResponseError, match=r"not JSON.*maintenance") as raised:
        list(make_client(sandbox).iter_conversations())

    assert "text/html; charset=utf-8, 144 bytes" in str(raised.value)
    assert "<!DOCTYPE" in str(raised.value)
    assert "after 2 attempt(s)" in str(raised.value)
    assert len(sandbox.requests) == 2


def test_an_error_object_with_status_200_is_a_response_error(make_sandbox, make_client):
    sandbox = make_sandbox()
    sandbox.add_fault("error-object", page=2)

    with pytest.raises(OctopushResponseError, match="JSON dict instead of a list"):
        list(make_client(sandbox).iter_conversations())


def test_an_unreachable_host_is_a_connection_error(make_client, sandbox):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OctopushClient(
        api_login="a",
        api_key="k",
        base_url=f"http://127.0.0.1:{port}/v1/public",
        retry=RetryPolicy(max_attempts=2, backoff_base=0.01),
    )

    with pytest.raises(OctopushConnectionError, match="check the base URL"):
        client.check_access()


@pytest.mark.parametrize("offsets", ["paris", "mixed"])
def test_timestamps_become_the_same_utc_instants_whatever_the_offset(
    make_sandbox, make_client, offsets
):
    sandbox = make_sandbox(conversations=300, offsets=offsets)

    rows = list(make_client(sandbox).iter_conversations())

    texts = [raw["last_message_at"] for raw in sandbox.store.snapshot()]
    written = {"Z" if t.endswith("Z") else t[-6:] for t in texts}
    assert written >= ({"+01:00", "+02:00"} if offsets == "paris" else {"Z", "-05:00", "+01:00"})
    for row, text in zip(rows, texts, strict=True):
        assert row["last_message_at"].tzinfo is UTC
        assert row["last_message_at"] == datetime.fromisoformat(text)


def test_fields_are_typed_and_unknown_fields_kept(make_sandbox, make_client):
    sandbox = make_sandbox(conversations=5)
    first = sandbox.store.snapshot()[0]

    row = next(make_client(sandbox).iter_conversations())

    assert row["conversation_id"] == first["conversation_id"]
    assert isinstance(row["color"], int) and isinstance(row["number_of_messages"], int)
    assert row["recipient_details"] == first["recipient_details"]
    assert set(row) == set(first)


def test_plain_http_to_a_remote_host_is_refused():
    with pytest.raises(OctopushConfigError, match="plain http"):
        OctopushClient(api_login="a", api_key="k", base_url="http://api.example.com/v1/public")
    OctopushClient(
        api_login="a",
        api_key="k",
        base_url="http://api.example.com/v1/public",
        allow_insecure_http=True,
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("per_page", 0),
        ("per_page", "100"),
        ("concurrency", 0),
        ("api_key", ""),
        ("api_login", ""),
        ("request_deadline", 0),
        ("request_deadline", "60"),
        ("max_response_bytes", 0.5),
        ("max_pages", 0),
    ],
)
def test_bad_settings_name_the_setting(option, value):
    settings = {"api_login": "a", "api_key": "k", option: value}
    with pytest.raises(OctopushConfigError, match=option):
        OctopushClient(**settings)


def test_the_key_never_shows_in_a_repr():
    client = OctopushClient(api_login="a", api_key="very-secret-key")

    assert "very-secret-key" not in repr(client)
    assert "very-secret-key" not in repr(client.session.auth)


def test_a_retry_after_http_date_is_honoured(make_sandbox, make_client):
    sandbox = make_sandbox(conversations=120)
    moment = datetime.now(UTC) + timedelta(seconds=2)
    sandbox.add_fault("429", page=2, retry_after=format_datetime(moment, usegmt=True))

    stream = make_client(sandbox).iter_pages()
    rows = [row for page in stream for row in page]

    assert len(rows) == 120
    assert stream.report.retries == 1
    assert datetime.now(UTC) >= moment.replace(microsecond=0)


def test_a_server_that_ignores_the_page_parameter_is_refused_not_looped_on(
    make_sandbox, make_client
):
    sandbox = make_sandbox(conversations=300, page_param="p")

    with pytest.raises(OctopushResponseError, match="ignore the 'page' parameter"):
        list(make_client(sandbox).iter_conversations())

    assert len(sandbox.requests) == 3


def test_a_429_retry_after_holds_back_every_thread_not_only_the_one_told(make_sandbox, make_client):
    # Each answer takes 0.2 s, so a busy machine's slower reaction to the 429 lets only a few
    # more answers out before the threads stop, whatever the load.
    sandbox = make_sandbox(conversations=3000, latency=0.2)
    sandbox.add_fault("429", page=8, retry_after="1")
    client = make_client(sandbox, concurrency=8, per_page=50)

    rows = list(client.iter_conversations())

    assert len(rows) == 3000
    arrivals = sorted(record.received_at for record in sandbox.requests)
    told = next(record for record in sandbox.requests if record.fault == "429").received_at
    before_the_pause = 0
    for previous, arrival in pairwise(arrivals[arrivals.index(told) :]):
        if arrival - previous >= 0.5:
            break
        before_the_pause += 1
    # Between the 429 and the second of silence it asked for, only the requests already past the
    # gate (about one for each of the 7 other threads, a few more on a busy machine) arrive; a
    # thread that paused alone would leave the others fetching until 32 pages ahead of the reader.
    assert before_the_pause < 16


KEY = "k3y/with+special=chars&more"
SPELLINGS = [KEY, quote(KEY, safe=""), quote_plus(KEY), quote(KEY, safe="").lower()]


def test_the_key_is_masked_in_response_excerpts_in_every_spelling(make_sandbox, caplog):
    sandbox = make_sandbox(api_key=KEY, echo_key=True)
    sandbox.add_fault("500", page=1, times=10)
    client = OctopushClient(
        api_login=DEFAULT_API_LOGIN,
        api_key=KEY,
        base_url=sandbox.base_url,
        retry=RetryPolicy(max_attempts=2, backoff_base=0.01),
    )

    with caplog.at_level(logging.DEBUG), pytest.raises(OctopushServerError) as raised:
        client.check_access()

    shown = str(raised.value) + caplog.text
    assert '"api-key":"***"' in str(raised.value)
    assert "api-key=***" in str(raised.value)
    assert not [spelling for spelling in SPELLINGS if spelling in shown]


def test_a_redirect_names_its_location_with_the_key_masked(make_sandbox):
    sandbox = make_sandbox(api_key=KEY)
    sandbox.add_fault("redirect", page=1)
    client = OctopushClient(api_login=DEFAULT_API_LOGIN, api_key=KEY, base_url=sandbox.base_url)

    with pytest.raises(OctopushResponseError, match="redirected page 1 \\(302\\)") as raised:
        client.check_access()

    assert f"{sandbox.url}?page=1&api-key=***" in str(raised.value)
    assert not [spelling for spelling in SPELLINGS if spelling in str(raised.value)]
    assert len(sandbox.requests) == 1


def test_a_path_that_brings_a_query_keeps_the_page_parameters(sandbox, make_client):
    client = make_client(sandbox, path="conversations/list?lang=en", per_page=100)

    conversations = list(client.iter_conversations())

    assert ids(conversations) == ids(sandbox.store.snapshot())
    assert [record.page for record in sandbox.requests] == [1, 2, 3, 4]
