"""The Octopush hook: turns an Airflow connection into the project's :class:`OctopushClient`.

The hook holds no HTTP logic of its own, so every fix to the client reaches Airflow users and dlt
users alike. Connection mapping: login = API login, password = API key, host = base URL override
(a full URL; Octopush's public API when empty), extras = client options (see
:data:`provider.CONNECTION_FIELDS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from octopush_provider import UI_FIELD_BEHAVIOUR
from octopush_provider.client import OctopushClient, Timeout
from octopush_provider.exceptions import (
    OctopushAuthError,
    OctopushConfigError,
    OctopushConnectionError,
    OctopushError,
)
from octopush_provider.settings import DEFAULT_BASE_URL, LOAD_CONCURRENCY

__all__ = ["OctopushHook", "as_bool", "client_options"]

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _as_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
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
    seconds = float(value)
    if not seconds > 0:
        raise ValueError
    return seconds


def _as_timeout(value: object) -> Timeout:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError
        return (_as_seconds(value[0]), _as_seconds(value[1]))
    return _as_seconds(value)


# Each extra: how to read it, and what to tell a person who wrote something else.
_EXTRAS: dict[str, tuple[Callable[[object], Any], str]] = {
    "per_page": (_as_int, "a whole number of conversations per page, e.g. 100"),
    "concurrency": (_as_int, "a whole number of concurrent requests, e.g. 4"),
    "timeout": (_as_timeout, "seconds > 0, e.g. 60, or [connect, read] such as [10, 60]"),
    "request_deadline": (_as_seconds, "seconds > 0, e.g. 120"),
    "max_response_bytes": (_as_int, "a whole number of bytes, e.g. 67108864"),
    "max_pages": (_as_int, "a whole number of pages, e.g. 1000"),
    "allow_insecure_http": (as_bool, "true or false"),
}


def client_options(extras: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """The client keyword arguments the connection's extras ask for; unset extras keep defaults.

    Raises :class:`OctopushConfigError` naming the extra and the connection when a value does not
    fit, instead of letting a type error surface deep in a request.
    """
    options: dict[str, Any] = {}
    for name, (parse, expected) in _EXTRAS.items():
        value = extras.get(name)
        if value is None or value == "":
            continue
        try:
            options[name] = parse(value)
        except (TypeError, ValueError):
            raise OctopushConfigError(
                f"extra {name!r} of {where} must be {expected}, got {value!r}"
            ) from None
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
    def client(self) -> OctopushClient:
        """The client built from the connection, once per hook."""
        conn = self.get_connection(self.octopush_conn_id)
        if not conn.login:
            raise OctopushConfigError(f"{self.where} has no login: set it to the API login")
        if not conn.password:
            raise OctopushConfigError(f"{self.where} has no password: set it to the API key")
        options = client_options(conn.extra_dejson, where=self.where)
        unknown = sorted(conn.extra_dejson.keys() - _EXTRAS.keys())
        if unknown:
            self.log.warning(
                "%s: ignoring unknown extras %s (known: %s)", self.where, unknown, sorted(_EXTRAS)
            )
        try:
            client = OctopushClient(
                api_login=conn.login,
                api_key=conn.password,
                base_url=conn.host or DEFAULT_BASE_URL,
                where=self.where,
                **({"concurrency": LOAD_CONCURRENCY} | options),
            )
        except OctopushConfigError as error:
            raise OctopushConfigError(f"{self.where} is misconfigured: {error}") from None
        self.log.info("Octopush client for %s: %r", self.where, client)
        return client

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

        The message says what to fix: the login or key (401), the key's rights (403), or the
        host and network; the client's messages never contain the key.
        """
        try:
            client = self.get_conn()
            client.check_access()
        except OctopushAuthError as error:
            if error.forbidden:
                return (
                    False,
                    f"Forbidden: the API key works but may not list conversations. {error}",
                )
            return False, f"Wrong API login or API key. {error}"
        except OctopushConnectionError as error:
            return False, f"Octopush is unreachable. {error}"
        except OctopushError as error:
            return False, str(error)
        finally:
            if "client" in self.__dict__:
                self.client.close()
        return True, f"Octopush accepted the API login and API key at {client.base_url}"
