"""One attempt (attempt.py) over answers built in memory: each status and body, what it means."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from octopush_provider.attempt import Attempt
from octopush_provider.auth import OctopushAuth
from octopush_provider.endpoint import CONVERSATIONS, MESSAGES, Endpoint
from octopush_provider.exceptions import (
    OctopushAuthError,
    OctopushConnectionError,
    OctopushRequestError,
    OctopushResponseError,
    OctopushServerError,
)
from octopush_provider.page import StopReason
from octopush_provider.retry import Transient
from octopush_provider.session import Sender, Timeout

BASE = "https://api.example.com/v1/public"
KEY = "secret-key-42"
LIST = CONVERSATIONS.at(BASE)
MESSAGES_OF_C1 = MESSAGES.at(BASE).asking({"conversation_id": "cid_c1"})


class FakeSender(Sender):
    """Answers every request with one response built in memory, and notes what was asked."""

    def __init__(self, answer: requests.Response | Exception) -> None:
        super().__init__(auth=OctopushAuth("me@example.com", KEY), proxied_url=BASE, pool_size=1)
        self.answer = answer
        self.sent: list[tuple[str, dict[str, str]]] = []

    def send(self, url: str, params: dict[str, str], *, timeout: Timeout) -> requests.Response:
        self.sent.append((url, params))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _answer(status: int, body: bytes, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.raw = io.BytesIO(body)
    response.headers = CaseInsensitiveDict(headers)
    return response


def _attempt(sender: FakeSender, **options: Any) -> Attempt:
    settings: dict[str, Any] = {
        "timeout": 5.0,
        "request_deadline": 10.0,
        "page_deadline": 30.0,
        "max_response_bytes": 10_000,
        "where": "connection 'octopush_default'",
    }
    return Attempt(sender=sender, auth=OctopushAuth("me@example.com", KEY), **(settings | options))


def _run(
    answer: requests.Response | Exception,
    *,
    endpoint: Endpoint = LIST,
    number: int = 1,
    per_page: int = 100,
    **options: Any,
) -> Any:
    return _attempt(FakeSender(answer), **options)(
        endpoint, number, per_page=per_page, seconds=30.0
    )


def test_a_page_of_conversations_becomes_a_page_of_clean_rows():
    body = (
        b'[{"conversation_id": 12, "last_message_at": "2026-11-01T12:00:00+01:00"},'
        b' {"conversation_id": "c2", "last_message_at": "2026-10-31T23:30:00Z"}]'
    )

    page = _run(_answer(200, body), number=3)

    assert [row["conversation_id"] for row in page.rows] == ["12", "c2"]
    assert [row["last_message_at"] for row in page.rows] == [
        datetime(2026, 11, 1, 11, 0, tzinfo=UTC),
        datetime(2026, 10, 31, 23, 30, tzinfo=UTC),
    ]
    assert (page.number, page.attempts, page.end, page.size) == (3, 1, None, len(body))


def test_the_request_asks_the_page_the_page_size_and_the_endpoints_parameters():
    sender = FakeSender(_answer(200, b"[]"))

    _attempt(sender)(MESSAGES_OF_C1, 2, per_page=50, seconds=30.0)

    assert sender.sent == [
        (
            f"{BASE}/conversations/messages/list",
            {"conversation_id": "cid_c1", "page": "2", "per_page": "50"},
        )
    ]


@pytest.mark.parametrize(
    ("status", "body", "number", "end"),
    [
        (200, b"[]", 1, StopReason.NO_CONVERSATIONS),
        (200, b"[]", 2, StopReason.EMPTY_PAGE),
        (404, b"whatever", 2, StopReason.NOT_FOUND),
        (
            404,
            b'{"code": 1004, "message": "No conversation found"}',
            1,
            StopReason.NO_CONVERSATIONS,
        ),
    ],
)
def test_an_empty_page_or_a_404_ends_the_list(status, body, number, end):
    page = _run(_answer(status, body), number=number)

    assert (page.rows, page.end) == ([], end)


def test_a_404_on_page_1_that_is_not_the_apis_nothing_found_is_a_wrong_path():
    body = b'{"code": 1004, "message": "Unknown endpoint /v1/public/nowhere"}'

    with pytest.raises(OctopushRequestError) as raised:
        _run(_answer(404, body))

    assert f"page 1 of {BASE}/conversations/list" in str(raised.value)
    assert "check the base URL and path of connection 'octopush_default'" in str(raised.value)


def test_a_401_names_the_login_and_where_and_masks_the_key_it_echoes():
    with pytest.raises(OctopushAuthError) as raised:
        _run(_answer(401, f'{{"message": "bad key {KEY}"}}'.encode()))

    message = str(raised.value)
    assert message.startswith(
        "Octopush rejected the credentials (401) of api-login 'me@example.com': check the API "
        "login and API key of connection 'octopush_default'. Response: "
    )
    assert KEY not in message
    assert raised.value.status_code == 401


def test_a_403_on_the_messages_endpoint_says_messages():
    with pytest.raises(OctopushAuthError, match=r"may not read messages \(403\)"):
        _run(_answer(403, b"{}"), endpoint=MESSAGES_OF_C1)


def test_a_503_is_transient_with_the_servers_retry_after():
    with pytest.raises(Transient) as raised:
        _run(_answer(503, b"busy", **{"Retry-After": "7"}), number=4)

    assert raised.value.retry_after == 7.0
    assert isinstance(raised.value.error, OctopushServerError)
    assert str(raised.value.error) == "Octopush answered 503 for page 4. Response: busy"


def test_a_redirect_is_refused_pointing_at_the_final_address():
    with pytest.raises(OctopushResponseError) as raised:
        _run(_answer(302, b"", Location="https://elsewhere.example.com/v1"))

    assert str(raised.value) == (
        "Octopush redirected page 1 (302) to 'https://elsewhere.example.com/v1': set the base "
        "URL of connection 'octopush_default' to the final address"
    )


def test_another_4xx_is_a_request_error():
    with pytest.raises(OctopushRequestError) as raised:
        _run(_answer(422, b"per_page too large"), number=2)

    assert str(raised.value) == (
        "Octopush refused the request for page 2 (422): per_page too large"
    )


def test_a_body_that_is_not_json_deserves_two_attempts():
    with pytest.raises(Transient) as raised:
        _run(_answer(200, b"<html>proxy error</html>", **{"Content-Type": "text/html"}))

    assert raised.value.attempts == 2
    assert "a body that is not JSON" in str(raised.value.error)


def test_json_that_is_not_a_list_names_the_endpoints_rows():
    with pytest.raises(OctopushResponseError, match="instead of a list of messages"):
        _run(_answer(200, b'{"messages": []}'), endpoint=MESSAGES_OF_C1)


def test_more_rows_than_asked_for_are_refused():
    body = b'[{"message_id": "a"}, {"message_id": "b"}, {"message_id": "c"}]'

    with pytest.raises(OctopushResponseError, match=r"with 3 rows when per_page=2 was asked"):
        _run(_answer(200, body), endpoint=MESSAGES_OF_C1, per_page=2)


def test_a_body_past_the_size_cap_is_refused_in_the_endpoints_words():
    with pytest.raises(OctopushResponseError) as raised:
        _run(
            _answer(200, b"[" + b" " * 200 + b"]"), endpoint=MESSAGES_OF_C1, max_response_bytes=100
        )

    assert str(raised.value).startswith(
        "Octopush answered page 1 with more than 100 bytes, far more than a page of messages"
    )


def test_a_connection_that_fails_is_transient_and_names_the_endpoint():
    with pytest.raises(Transient) as raised:
        _run(requests.ConnectionError("refused"), endpoint=MESSAGES_OF_C1)

    assert isinstance(raised.value.error, OctopushConnectionError)
    assert str(raised.value.error) == (
        f"could not read from Octopush at {BASE}/conversations/messages/list (ConnectionError): "
        "check the base URL of connection 'octopush_default' and the network"
    )
