"""The Octopush hook against the sandbox, with connections given as ``AIRFLOW_CONN_`` JSON."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from octopush_provider import CONNECTION_FIELDS
from octopush_provider.exceptions import OctopushConfigError, OctopushRequestError
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


def test_the_connection_is_looked_up_once_per_hook(
    sandbox: SandboxServer, octopush_connection: Callable[..., None], monkeypatch
) -> None:
    # A secrets backend may be a remote service: the operator asks for the hash secret, then
    # for the client, and each used to look the connection up again.
    octopush_connection(sandbox.base_url, hash_secret="s3cret-salt")
    lookups: list[str] = []
    look_up = OctopushHook.get_connection

    def counted(conn_id: str) -> Any:
        lookups.append(conn_id)
        return look_up(conn_id)

    monkeypatch.setattr(OctopushHook, "get_connection", staticmethod(counted))
    hook = OctopushHook()

    assert hook.hash_secret() == "s3cret-salt"
    assert list(hook.get_conn().iter_conversations())
    assert lookups == ["octopush_default"]


def test_extras_configure_the_client(
    sandbox: SandboxServer, octopush_connection: Callable[..., None]
) -> None:
    octopush_connection(
        sandbox.base_url,
        per_page="250",
        concurrency=4,
        connect_timeout=2,
        read_timeout="30",
        allow_insecure_http="true",
        request_deadline="90",
        max_response_bytes=1_000_000,
        max_pages="40",
        messages_path=" /moved/messages/ ",
    )

    client = OctopushHook().get_conn()
    cid = sandbox.store.snapshot()[0]["conversation_id"]
    with pytest.raises(OctopushRequestError, match="/v1/public/moved/messages"):
        list(client.iter_messages(cid))  # the sandbox has no such endpoint: a 404 that says so
    assert [urlsplit(record.path).path for record in sandbox.requests] == [
        "/v1/public/moved/messages"
    ]

    assert (client.per_page, client.concurrency, client.timeout) == (250, 4, (2.0, 30.0))
    assert (client.request_deadline, client.max_response_bytes) == (90.0, 1_000_000)
    assert client.max_pages == 40


def test_unset_extras_keep_the_defaults_the_form_describes(
    sandbox: SandboxServer, octopush_connection: Callable[..., None]
) -> None:
    octopush_connection(sandbox.base_url, per_page="", read_timeout=None)

    client = OctopushHook().get_conn()

    assert (client.per_page, client.concurrency, client.timeout) == (100, 12, (10.0, 60.0))
    assert client.messages_url == f"{sandbox.base_url}/conversations/messages/list"
    assert (
        "Empty: conversations/messages/list." in CONNECTION_FIELDS["messages_path"]["description"]
    )
    shown = {
        "per_page": 100,
        "concurrency": 12,
        "connect_timeout": 10,
        "read_timeout": 60,
        "request_deadline": 120,
    }
    for name, default in shown.items():
        assert f"Empty: {default}." in CONNECTION_FIELDS[name]["description"]


@pytest.mark.parametrize("empty", [None, ""], ids=["null", "empty-string"])
def test_every_field_left_empty_in_the_form_reads_as_if_it_were_not_stored(
    sandbox: SandboxServer,
    octopush_connection: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
    empty: str | None,
) -> None:
    # Airflow 3.3's form stores every custom field, null when left empty (written by hand: "").
    octopush_connection(sandbox.base_url)
    unset = OctopushHook()
    octopush_connection(sandbox.base_url, **dict.fromkeys(CONNECTION_FIELDS, empty))
    stored = OctopushHook()

    client, default = stored.get_conn(), unset.get_conn()

    assert repr(client) == repr(default)
    assert (client.per_page, client.concurrency, client.timeout, client.max_pages) == (
        default.per_page,
        default.concurrency,
        default.timeout,
        default.max_pages,
    )
    assert (client.request_deadline, client.max_response_bytes, client.messages_url) == (
        default.request_deadline,
        default.max_response_bytes,
        default.messages_url,
    )
    assert stored.hash_secret() is None
    assert stored.test_connection() == unset.test_connection()
    assert "unknown extras" not in caplog.text
    assert ids(list(client.iter_conversations())) == ids(list(default.iter_conversations()))


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"per_page": "lots"}, "Page size (extra 'per_page')"),
        ({"per_page": 0}, "Page size (extra 'per_page')"),
        ({"per_page": 10_001}, "Page size (extra 'per_page')"),
        ({"concurrency": 64}, "Concurrent requests (extra 'concurrency')"),
        ({"connect_timeout": -5}, "Connect timeout (seconds) (extra 'connect_timeout')"),
        ({"read_timeout": 0.5}, "Read timeout (seconds) (extra 'read_timeout')"),
        ({"read_timeout": "nan"}, "Read timeout (seconds) (extra 'read_timeout')"),
        ({"allow_insecure_http": "maybe"}, "Allow plain http (extra 'allow_insecure_http')"),
        ({"request_deadline": "soon"}, "Request deadline (seconds) (extra 'request_deadline')"),
        ({"max_response_bytes": 0}, "Largest answer (bytes) (extra 'max_response_bytes')"),
        ({"max_pages": 0}, "Most pages a run reads (extra 'max_pages')"),
        ({"messages_path": "messages/list?all=1"}, "Messages path (extra 'messages_path')"),
        ({"messages_path": "https://x.example/list"}, "Messages path (extra 'messages_path')"),
        ({"messages_path": 5}, "Messages path (extra 'messages_path')"),
    ],
)
def test_a_value_the_form_would_refuse_is_refused_naming_the_extra(
    sandbox: SandboxServer,
    octopush_connection: Callable[..., None],
    extra: dict[str, Any],
    named: str,
) -> None:
    octopush_connection(sandbox.base_url, **extra)

    with pytest.raises(OctopushConfigError) as raised:
        OctopushHook().get_conn()

    (value,) = extra.values()
    assert "e+" not in str(raised.value)
    assert str(raised.value).startswith(f"{named} of Airflow connection 'octopush_default' must")
    assert str(raised.value).endswith(f"got {value!r}")
    assert sandbox.requests == []


def test_the_form_enforces_the_bounds_the_hook_reads() -> None:
    # Airflow's UI enforces minimum and maximum, not exclusiveMinimum: every number is bounded so.
    numbers = [
        name
        for name, field in CONNECTION_FIELDS.items()
        if {"integer", "number"} & set(field["schema"]["type"])
    ]
    assert len(numbers) >= 7
    for name in numbers:
        schema = CONNECTION_FIELDS[name]["schema"]
        assert schema["minimum"] >= 1, name
        assert "maximum" in schema, name
        assert "exclusiveMinimum" not in schema, name


def test_the_timeout_pair_of_earlier_versions_is_refused_with_what_to_do(
    sandbox: SandboxServer, octopush_connection: Callable[..., None]
) -> None:
    octopush_connection(sandbox.base_url, timeout=[10, 60])

    with pytest.raises(OctopushConfigError) as raised:
        OctopushHook().get_conn()

    assert "extra 'timeout' of Airflow connection 'octopush_default' is no longer read" in str(
        raised.value
    )
    assert "Connect timeout (connect_timeout) and Read timeout (read_timeout)" in str(raised.value)


def test_a_port_is_refused_because_the_base_url_holds_it(
    sandbox: SandboxServer, set_connection: Callable[..., None]
) -> None:
    fields = {"conn_type": "octopush", "login": DEFAULT_API_LOGIN, "password": DEFAULT_API_KEY}
    set_connection("octopush_default", host=sandbox.base_url, port=8443, **fields)
    with pytest.raises(OctopushConfigError, match=r"write it there .* set Port to 0"):
        OctopushHook().get_conn()


@pytest.mark.parametrize(
    ("key", "answer"),
    [
        (DEFAULT_API_KEY, "Octopush accepted the API login and API key at {base_url}."),
        (
            WRONG_KEY,
            f"Wrong API login or API key: Octopush refused API login {DEFAULT_API_LOGIN!r} (401).",
        ),
    ],
    ids=["right-key", "wrong-key"],
)
def test_the_test_button_answers_about_the_credentials_whatever_the_port(
    sandbox: SandboxServer, set_connection: Callable[..., None], key: str, answer: str
) -> None:
    fields = {"conn_type": "octopush", "login": DEFAULT_API_LOGIN, "password": key}
    set_connection("octopush_default", host=sandbox.base_url, port=8443, **fields)

    ok, message = OctopushHook().test_connection()

    assert not ok  # a load would refuse the port
    assert message == (
        f"{answer.format(base_url=sandbox.base_url)} Port is 8443, but the port is read from the "
        "Base URL: write it there (https://host:8443/...) and set Port to 0."
    )
    assert len(sandbox.requests) == 1


def test_plain_http_to_a_remote_host_is_refused(
    octopush_connection: Callable[..., None],
) -> None:
    octopush_connection("http://api.example.com/v1/public")

    with pytest.raises(OctopushConfigError) as raised:
        OctopushHook().get_conn()
    ok, message = OctopushHook().test_connection()

    assert "Airflow connection 'octopush_default' is misconfigured" in str(raised.value)
    assert "plain http" in str(raised.value)
    assert not ok
    assert message == (
        "The Base URL uses plain http, which would send the API key unencrypted: use https, "
        'or switch on "Allow plain http" for a proxy you trust.'
    )


def test_connection_succeeds_with_one_cheap_request(
    sandbox: SandboxServer, octopush_connection: Callable[..., None]
) -> None:
    octopush_connection(sandbox.base_url)

    ok, message = OctopushHook().test_connection()

    assert ok, message
    assert sandbox.base_url in message
    assert [(r.page, r.per_page, r.status) for r in sandbox.requests] == [(1, 1, 200)]


@pytest.mark.parametrize(
    ("login", "key", "status", "expected"),
    [
        (
            DEFAULT_API_LOGIN,
            WRONG_KEY,
            401,
            f"Wrong API login or API key: Octopush refused API login {DEFAULT_API_LOGIN!r} (401).",
        ),
        (
            READ_ONLY_LOGIN,
            DEFAULT_API_KEY,
            403,
            f"The API key is valid, but API login {READ_ONLY_LOGIN!r} may not read conversations "
            "(403): give the key access to conversations in Octopush.",
        ),
    ],
    ids=["wrong-key", "read-only-login"],
)
def test_connection_tells_a_wrong_key_from_a_forbidden_login(
    sandbox: SandboxServer,
    octopush_connection: Callable[..., None],
    login: str,
    key: str,
    status: int,
    expected: str,
) -> None:
    octopush_connection(sandbox.base_url, login=login, key=key)

    ok, message = OctopushHook().test_connection()

    assert (ok, message) == (False, expected)
    assert [r.status for r in sandbox.requests] == [status]


def test_connection_reports_an_unreachable_host_in_one_sentence(
    octopush_connection: Callable[..., None],
) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/v1/public"
    octopush_connection(base_url)

    ok, message = OctopushHook().test_connection()

    assert (ok, message) == (
        False,
        f"Could not reach Octopush at {base_url}: check the Base URL and the network.",
    )


def test_connection_messages_never_name_the_connection_id(
    sandbox: SandboxServer, set_connection: Callable[..., None]
) -> None:
    # Airflow tests the form under a temporary connection id that means nothing to the user.
    set_connection("gvwba8td", conn_type="octopush", login=DEFAULT_API_LOGIN, password="", host="x")

    ok, message = OctopushHook(octopush_conn_id="gvwba8td").test_connection()

    assert (ok, message) == (False, "The API key is empty: set it.")
