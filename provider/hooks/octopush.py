"""The Octopush hook: turns an Airflow connection into the project's :class:`OctopushClient`.

The hook holds no HTTP logic of its own, so every fix to the client reaches Airflow users and dlt
users alike. Connection mapping: login = API login, password = API key, host = base URL override
(a full URL; Octopush's public API when empty), port = 0 or empty (the base URL holds the port),
extras = client options (see :data:`octopush_provider.CONNECTION_FIELDS`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook, Connection
from airflow.sdk.exceptions import AirflowNotFoundException

from octopush_provider import CONNECTION_FIELDS, UI_FIELD_BEHAVIOUR, port_zero_needed
from octopush_provider.client import OctopushClient
from octopush_provider.exceptions import (
    OctopushAuthError,
    OctopushConfigError,
    OctopushConnectionError,
    OctopushError,
    of_where,
)
from octopush_provider.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    LOAD_CONCURRENCY,
    MESSAGES_PATH,
)

__all__ = ["HASH_SECRET_EXTRA", "OctopushHook", "as_bool", "client_options"]

# Not a client option: the dlt source reads it, to key the HMAC of hashed columns.
HASH_SECRET_EXTRA = "hash_secret"

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_PATH = re.compile(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*")


def _as_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError


def as_bool(value: object) -> bool:
    """A boolean from a bool or its usual spellings in a form, a URI or a rendered template."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError


def _as_seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError
    return float(value)


def _as_path(value: object) -> str:
    """A path below the base URL: segments of URL-safe characters, no query, host or spaces."""
    if not isinstance(value, str) or not _PATH.fullmatch(value.strip().strip("/")):
        raise ValueError
    return value.strip().strip("/")


# Each extra: how to read it, and what to tell a person who wrote something else. The bounds come
# from the form's schema, so the hook refuses exactly what the form would not have saved.
_EXTRAS: dict[str, tuple[Callable[[object], Any], str]] = {
    "per_page": (_as_int, "a whole number"),
    "concurrency": (_as_int, "a whole number"),
    "connect_timeout": (_as_seconds, "a number of seconds"),
    "read_timeout": (_as_seconds, "a number of seconds"),
    "request_deadline": (_as_seconds, "a number of seconds"),
    "max_response_bytes": (_as_int, "a whole number of bytes"),
    "max_pages": (_as_int, "a whole number of pages"),
    "allow_insecure_http": (as_bool, "true or false"),
    "messages_path": (_as_path, f"a path below the base URL, such as {MESSAGES_PATH}"),
}

# Extras of earlier versions that are refused rather than read differently than they were meant.
_RETIRED_EXTRAS = {
    "timeout": "set Connect timeout (connect_timeout) and Read timeout (read_timeout) instead "
    "and remove 'timeout' from the Extra JSON",
}


def _port_advice(port: int, where: str | None) -> str:
    """What to do with a Port set on the connection: the Base URL holds the port."""
    empty = "set Port to 0" if port_zero_needed() else "leave Port empty"
    return (
        f"Port{of_where(where)} is {port}, but the port is read from the Base URL: "
        f"write it there (https://host:{port}/...) and {empty}"
    )


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bounds(name: str) -> tuple[float | None, float | None]:
    schema = CONNECTION_FIELDS[name]["schema"]
    return schema.get("minimum"), schema.get("maximum")


def _read_extra(name: str, value: object, *, where: str | None) -> Any:
    parse, expected = _EXTRAS[name]
    low, high = _bounds(name)
    if low is not None and high is not None:
        expected = f"{expected} from {_number(low)} to {_number(high)}"
    label = CONNECTION_FIELDS[name]["label"]
    problem = OctopushConfigError(
        f"{label} (extra {name!r}){of_where(where)} must be {expected}, got {value!r}", setting=name
    )
    try:
        parsed = parse(value)
    except (TypeError, ValueError):
        raise problem from None
    # Written so that NaN, which no comparison holds for, is out of bounds too.
    if (low is not None and not parsed >= low) or (high is not None and not parsed <= high):
        raise problem
    return parsed


def client_options(extras: Mapping[str, Any], *, where: str | None) -> dict[str, Any]:
    """The client keyword arguments the connection's extras ask for; unset extras keep defaults.

    Raises :class:`OctopushConfigError` naming the extra (and the connection, when ``where``
    names it) when a value is out of the form's bounds or of another type, instead of letting a
    type error surface deep in a request or a value be silently changed.
    """
    for name, advice in _RETIRED_EXTRAS.items():
        if extras.get(name) not in (None, ""):
            raise OctopushConfigError(
                f"extra {name!r}{of_where(where)} is no longer read: {advice}"
            )
    values = {
        name: _read_extra(name, extras[name], where=where)
        for name in _EXTRAS
        if extras.get(name) not in (None, "")
    }
    options: dict[str, Any] = {"concurrency": LOAD_CONCURRENCY}
    options |= {name: value for name, value in values.items() if not name.endswith("_timeout")}
    options["timeout"] = (
        values.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        values.get("read_timeout", DEFAULT_READ_TIMEOUT),
    )
    return options


class OctopushHook(BaseHook):
    """Reads Octopush conversations with the credentials of an ``octopush`` Airflow connection.

    The constructor only remembers the connection id: the connection is read, and the client
    built, on the first call to :meth:`get_conn`, so a DAG file that builds the hook stays cheap
    to parse and never touches a secrets backend.
    """

    conn_name_attr = "octopush_conn_id"
    default_conn_name = "octopush_default"
    conn_type = "octopush"
    hook_name = "Octopush"

    def __init__(self, *, octopush_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.octopush_conn_id = octopush_conn_id

    @property
    def where(self) -> str:
        """How error messages name the place the credentials come from."""
        return f"Airflow connection {self.octopush_conn_id!r}"

    @cached_property
    def connection(self) -> Connection:
        """The Airflow connection, looked up once per hook: a secrets backend may be a remote
        service, and a load reads the connection twice (its hash secret, then its client).

        A connection that is missing or of another type is an :class:`OctopushConfigError`
        saying what to create: no retry can mend it.
        """
        conn_id = self.octopush_conn_id
        try:
            conn = self.get_connection(conn_id)
        except AirflowNotFoundException:
            raise OctopushConfigError(
                f"{self.where} does not exist: create it (Admin > Connections, type Octopush, or "
                f"the environment variable AIRFLOW_CONN_{conn_id.upper()}), or set the "
                "operator's octopush_conn_id to the one you have",
                setting="octopush_conn_id",
            ) from None
        if conn.conn_type != self.conn_type:
            raise OctopushConfigError(
                f"{self.where} is of type {conn.conn_type!r}, not {self.conn_type!r}: "
                "create an Octopush connection (API login and API key) and set the operator's "
                "octopush_conn_id to it",
                setting="octopush_conn_id",
            )
        return conn

    @cached_property
    def client(self) -> OctopushClient:
        """The client built from the connection, once per hook."""
        client = self._build_client(where=self.where)
        self.log.info("Octopush client for %s: %r", self.where, client)
        return client

    def _build_client(self, *, where: str | None, check_port: bool = True) -> OctopushClient:
        conn = self.connection
        if not conn.login:
            raise OctopushConfigError(f"The API login{of_where(where)} is empty: set it")
        if not conn.password:
            raise OctopushConfigError(f"The API key{of_where(where)} is empty: set it")
        if conn.port and check_port:
            raise OctopushConfigError(_port_advice(conn.port, where), setting="port")
        options = client_options(conn.extra_dejson, where=where)
        unknown = sorted(
            conn.extra_dejson.keys() - _EXTRAS.keys() - _RETIRED_EXTRAS.keys() - {HASH_SECRET_EXTRA}
        )
        if unknown:
            self.log.warning(
                "%s: ignoring unknown extras %s (known: %s)", where, unknown, sorted(_EXTRAS)
            )
        try:
            return OctopushClient(
                api_login=conn.login,
                api_key=conn.password,
                base_url=conn.host or DEFAULT_BASE_URL,
                where=where,
                **options,
            )
        except OctopushConfigError as error:
            if where is None:
                raise
            raise OctopushConfigError(
                f"{where} is misconfigured: {error}", setting=error.setting
            ) from None

    def hash_secret(self) -> str | None:
        """The connection's ``hash_secret`` extra, which keys hashed columns; None when unset."""
        value = self.connection.extra_dejson.get(HASH_SECRET_EXTRA)
        return str(value) if value else None

    def get_conn(self) -> OctopushClient:
        """The :class:`OctopushClient` of the connection; nothing is sent until it reads."""
        return self.client

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form's labels, for Airflow versions that ask the hook for them.

        Airflow >= 3.2 reads the same behaviour from the provider info without importing the hook.
        """
        return {
            "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        }

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated request, for the "Test" button of the connection form.

        The message is written for the person at the form: it names the form's fields, says what
        to fix (the login or key, the key's rights, the Base URL or the network) and never the
        connection id, which Airflow replaces by a temporary one while it tests. It never
        contains the key. A Port, which a load refuses, fails the test without hiding the answer
        about the credentials: the advice about it follows that answer.
        """
        ok, message = self._test_credentials()
        port = self.connection.port
        if not port:
            return ok, message
        return False, f"{message} {_port_advice(port, None)}."

    def _test_credentials(self) -> tuple[bool, str]:
        try:
            client = self._build_client(where=None, check_port=False)
        except OctopushConfigError as error:
            if error.setting == "allow_insecure_http":
                return False, (
                    "The Base URL uses plain http, which would send the API key unencrypted: use "
                    'https, or switch on "Allow plain http" for a proxy you trust.'
                )
            if error.setting == "base_url":
                return False, f"Base URL: {error}."
            return False, f"{error}."
        try:
            client.check_access()
        except OctopushAuthError as error:
            login = self.connection.login
            if error.forbidden:
                return False, (
                    f"The API key is valid, but API login {login!r} may not read conversations "
                    "(403): give the key access to conversations in Octopush."
                )
            return False, f"Wrong API login or API key: Octopush refused API login {login!r} (401)."
        except OctopushConnectionError:
            return False, (
                f"Could not reach Octopush at {client.base_url}: "
                "check the Base URL and the network."
            )
        except OctopushError as error:
            return False, str(error)
        finally:
            client.close()
        return True, f"Octopush accepted the API login and API key at {client.base_url}."
