"""The Octopush hook against the sandbox, with connections given as ``AIRFLOW_CONN_`` JSON."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from octopush_provider.exceptions import OctopushConfigError
from octopush_provider.hooks.octopush import OctopushHook
from octopush_provider.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_LOGIN,
    READ_ONLY_LOGIN,
    SandboxServer,
)
from tests.helpers import ids

WRONG_KEY = "not-the-key-0123456789"


@pytest.fixture
def octopush_connection(set_connection: Callable[..., None]) -> Callable[..., None]:
    """Point ``octopush_default`` at a base URL, with the sandbox's credentials by default."""

    def point(
        base_url: str, *, login: str = DEFAULT_API_LOGIN, key: str = DEFAULT_API_KEY, **extra: Any
    ) -> None:
        set_connection(
            "octopush_default",
            conn_type="octopush",
            login=login,
            password=key,
            host=base_url,
            extra=extra,
        )

    return point


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_hook_pages_through_the_sandbox_from_a_json_connection(
    sandbox: SandboxServer, octopush_connection: Callable[..., None]
) -> None:
    octopush_connection(sandbox.base_url, per_page=40)

    client = OctopushHook().get_conn()
    conversations = list(client.iter_conversations())

    assert ids(conversations) == ids(sandbox.store.snapshot())
    assert {record.per_page for record in sandbox.requests} == {40}
    assert {record.login for record in sandbox.requests} == {DEFAULT_API_LOGIN}


def test_hook_reads_nothing_until_asked(
    sandbox: SandboxServer, octopush_connection: Callable[..., None]
) -> None:
    # The connection does not exist yet when the hook is built: a constructor that looked it up
    # would fail here, or would read with settings that are gone by the time the hook is used.
    hook = OctopushHook(octopush_conn_id="octopush_default")
    octopush_connection(sandbox.base_url, per_page=40)
    assert sandbox.requests == []

    conversations = list(hook.get_conn().iter_conversations())

    assert ids(conversations) == ids(sandbox.store.snapshot())
    assert {record.per_page for record in sandbox.requests} == {40}


def test_extras_configure_the_client(
    sandbox: SandboxServer, octopush_connection: Callable[..., None]
) -> None:
    octopush_connection(
        sandbox.base_url,
        per_page="250",
        concurrency=4,
        timeout=[2, 30],
        allow_insecure_http="true",
        request_deadline="90",
        max_response_bytes=1_000_000,
        max_pages="40",
    )

    client = OctopushHook().get_conn()

    assert (client.per_page, client.concurrency, client.timeout) == (250, 4, (2.0, 30.0))
    assert (client.request_deadline, client.max_response_bytes) == (90.0, 1_000_000)
    assert client.max_pages == 40


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"per_page": "lots"}, "'per_page'"),
        ({"concurrency": 99}, "concurrency must be between 1 and 32"),
        ({"timeout": -1}, "'timeout'"),
        ({"allow_insecure_http": "maybe"}, "'allow_insecure_http'"),
        ({"request_deadline": "soon"}, "'request_deadline'"),
        ({"max_pages": 0}, "max_pages must be a whole number > 0"),
    ],
)
def test_a_bad_extra_is_named_with_its_connection(
    sandbox: SandboxServer,
    octopush_connection: Callable[..., None],
    extra: dict[str, Any],
    named: str,
) -> None:
    octopush_connection(sandbox.base_url, **extra)

    with pytest.raises(OctopushConfigError) as raised:
        OctopushHook().get_conn()

    assert named in str(raised.value)
    assert "Airflow connection 'octopush_default'" in str(raised.value)


def test_plain_http_to_a_remote_host_is_refused(
    octopush_connection: Callable[..., None],
) -> None:
    octopush_connection("http://api.example.com/v1/public")

    ok, message = OctopushHook().test_connection()

    assert not ok
    assert "plain http" in message
    assert "Airflow connection 'octopush_default'" in message


def test_connection_succeeds_with_one_cheap_request(
    sandbox: SandboxServer, octopush_connection: Callable[..., None]
) -> None:
    octopush_connection(sandbox.base_url)

    ok, message = OctopushHook().test_connection()

    assert ok, message
    assert sandbox.base_url in message
    assert [(r.page, r.per_page, r.status) for r in sandbox.requests] == [(1, 1, 200)]


@pytest.mark.parametrize(
    ("login", "key", "status", "start"),
    [
        (DEFAULT_API_LOGIN, WRONG_KEY, 401, "Wrong API login or API key"),
        (READ_ONLY_LOGIN, DEFAULT_API_KEY, 403, "Forbidden"),
    ],
    ids=["wrong-key", "read-only-login"],
)
def test_connection_tells_a_wrong_key_from_a_forbidden_login(
    sandbox: SandboxServer,
    octopush_connection: Callable[..., None],
    login: str,
    key: str,
    status: int,
    start: str,
) -> None:
    octopush_connection(sandbox.base_url, login=login, key=key)

    ok, message = OctopushHook().test_connection()

    assert not ok
    assert message.startswith(start)
    assert f"({status})" in message
    assert f"api-login {login!r}" in message
    assert "Airflow connection 'octopush_default'" in message
    assert key not in message
    assert [r.status for r in sandbox.requests] == [status]


def test_connection_reports_an_unreachable_host(
    octopush_connection: Callable[..., None],
) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/v1/public"
    octopush_connection(base_url)

    ok, message = OctopushHook().test_connection()

    assert not ok
    assert message.startswith("Octopush is unreachable")
    assert base_url in message
    assert "check the base URL of Airflow connection 'octopush_default'" in message
    assert DEFAULT_API_KEY not in message
