"""Errors raised by the Octopush client.

Every error derives from :class:`OctopushError`, so one ``except`` catches them all::

    OctopushError
    ├── OctopushConfigError       bad client settings (also a ValueError); raised before any I/O
    ├── OctopushResponseError     a 2xx answer whose body is not the JSON array of conversations
    │   └── OctopushMismatchError messages that cannot belong to the conversation asked about
    ├── OctopushConnectionError   unreachable host, reset or timeout, after the retries ran out
    ├── OctopushCancelledError    the read was cancelled (:meth:`OctopushClient.cancel`)
    ├── OctopushStalledReadError  a reader waited for a page that no worker can deliver (a bug)
    └── OctopushHTTPError         an error status
        ├── OctopushAuthError     401 or 403: wrong credentials, or the login may not read
        ├── OctopushRequestError  400 and other 4xx: the request itself is wrong
        └── OctopushServerError   429 or 5xx, after the retries ran out

The dlt source adds two of its own, ``OctopushPrivacyError`` (a child of
``OctopushConfigError``) and ``OctopushDeletionError``: see :mod:`octopush_dlt.errors`.

Messages say what to do next. They never contain the API key: bodies are masked and truncated
by :func:`octopush_provider.redaction.excerpt` before they reach an error.
"""

from __future__ import annotations


def of_where(where: str | None) -> str:
    """`` of <where>`` for an error message, where the settings come from; empty when unknown."""
    return f" of {where}" if where else ""


class OctopushError(Exception):
    """Root of every error this package raises.

    ``attempts`` is the number of requests sent for the page that failed (0 when none was), so
    that the figures of a failed read count them.
    """

    attempts: int = 0


class OctopushConfigError(OctopushError, ValueError):
    """A setting of the client is invalid; names the setting and what it accepts.

    ``setting`` is the client argument at fault, when one is, so that an adapter (the Airflow
    connection form) can say it in its own words.
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class OctopushResponseError(OctopushError):
    """The API answered with success but the body is not a JSON array of conversations."""


class OctopushMismatchError(OctopushResponseError):
    """The messages answered for a conversation cannot be its own (the API ignored the filter)."""


class OctopushConnectionError(OctopushError):
    """The API could not be reached, or did not answer in time, even after retrying."""


class OctopushCancelledError(OctopushError):
    """The client was cancelled (a killed or timed-out task): no more pages are read."""


class OctopushStalledReadError(OctopushError):
    """A concurrent read waited for a page no worker will fetch: a bug, raised instead of a hang."""


class OctopushHTTPError(OctopushError):
    """The API answered with an error status."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class OctopushAuthError(OctopushHTTPError):
    """401 (the login or key is wrong) or 403 (the login may not read conversations)."""

    @property
    def forbidden(self) -> bool:
        """True when the credentials are valid but lack the right (403)."""
        return self.status_code == 403


class OctopushRequestError(OctopushHTTPError):
    """400 or another 4xx: retrying the same request will not help."""


class OctopushServerError(OctopushHTTPError):
    """429 or 5xx that persisted through every retry."""
