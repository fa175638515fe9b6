"""The session requests go out on (session.py): prepared offline, no request is sent."""

from __future__ import annotations

from octopush_provider.auth import OctopushAuth
from octopush_provider.session import Sender


def _sender() -> Sender:
    return Sender(
        auth=OctopushAuth("me@example.com", "k-123"), proxied_url="https://h/v1", pool_size=4
    )


def test_a_request_carries_both_credentials_headers_and_the_parameters():
    request = _sender().request("https://h/v1/conversations/list", {"page": "2", "per_page": "50"})

    assert request.url == "https://h/v1/conversations/list?page=2&per_page=50"
    assert (request.headers["api-login"], request.headers["api-key"]) == ("me@example.com", "k-123")
    assert request.headers["User-Agent"] == "airflow-provider-octopush"
    assert request.headers["Accept"] == "application/json"


def test_a_path_that_brings_its_own_query_keeps_it():
    request = _sender().request("https://h/v1/list?lang=fr", {"page": "1"})

    assert request.url == "https://h/v1/list?lang=fr&page=1"


def test_requests_of_one_url_share_a_template_but_not_their_parameters():
    sender = _sender()

    first = sender.request("https://h/v1/list", {"page": "1"})
    second = sender.request("https://h/v1/list", {"page": "2"})

    assert (first.url, second.url) == ("https://h/v1/list?page=1", "https://h/v1/list?page=2")
    assert first.headers is not second.headers


def test_the_session_is_built_on_first_use_and_dropped_by_close():
    sender = _sender()
    assert "session" not in vars(sender)  # the constructor does no I/O

    session = sender.session
    sender.close()

    assert "session" not in vars(sender)
    assert sender.session is not session
