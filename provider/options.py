"""Checks of the client's settings, before any I/O: each error names the setting at fault.

:class:`~octopush_provider.client.OctopushClient` calls :func:`check_options` first thing, so
that a wrong setting fails at construction (an Airflow task fails before it reads anything)
with :class:`~octopush_provider.exceptions.OctopushConfigError`.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from octopush_provider.exceptions import OctopushConfigError
from octopush_provider.settings import DEFAULT_BASE_URL, MAX_CONCURRENCY, MAX_PER_PAGE

__all__ = ["check_base_url", "check_options", "check_positive"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine (where plain http sends the key nowhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_positive(name: str, value: object, *, whole: bool = False) -> None:
    """Refuse ``value`` unless it is a number (a whole one with ``whole``) above zero."""
    kind = int if whole else int | float
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        what = "a whole number" if whole else "a number"
        raise OctopushConfigError(f"{name} must be {what} > 0, got {value!r}")


def _check_between(name: str, value: object, highest: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OctopushConfigError(f"{name} must be an integer, got {value!r}")
    if not 1 <= value <= highest:
        raise OctopushConfigError(f"{name} must be between 1 and {highest}")


def check_base_url(base_url: str, *, allow_insecure_http: bool) -> str:
    """The base URL without its trailing slash; refused unless http(s) and safe for the key."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OctopushConfigError(
            f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL!r}, got {base_url!r}",
            setting="base_url",
        )
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        raise OctopushConfigError(
            f"base_url {base_url!r} uses plain http, which would send the API key unencrypted; "
            "use https, or set allow_insecure_http=True if you really mean it",
            setting="allow_insecure_http",
        )
    if parts.query or parts.fragment:
        raise OctopushConfigError(
            f"base_url must not carry a query or fragment: {base_url!r}", setting="base_url"
        )
    return base_url.rstrip("/")


def check_options(
    *,
    api_login: object,
    api_key: object,
    base_url: str,
    allow_insecure_http: bool,
    per_page: object,
    concurrency: object,
    request_deadline: object,
    page_deadline: object,
    max_response_bytes: object,
    max_bytes_ahead: object,
    page_ceiling: object,
    max_pages: object,
) -> str:
    """Check every setting of a client, in the order of its arguments; returns the base URL.

    Args:
        api_login: the account's API login, required.
        api_key: the account's API key, required.
        base_url: an http(s) URL; plain http only to this machine or with
            ``allow_insecure_http``.
        allow_insecure_http: whether plain http may carry the key to another host.
        per_page: rows asked for per request, 1 to ``MAX_PER_PAGE``.
        concurrency: requests at once, 1 to ``MAX_CONCURRENCY``.
        request_deadline: seconds, above zero.
        page_deadline: seconds, above zero.
        max_response_bytes: a whole number above zero.
        max_bytes_ahead: a whole number above zero.
        page_ceiling: a whole number above zero.
        max_pages: None (no cap) or a whole number above zero.
    """
    if not api_login or not isinstance(api_login, str):
        raise OctopushConfigError("api_login is required: the API login of the account")
    if not api_key or not isinstance(api_key, str):
        raise OctopushConfigError("api_key is required: the API key of the account")
    _check_between("per_page", per_page, MAX_PER_PAGE)
    _check_between("concurrency", concurrency, MAX_CONCURRENCY)
    check_positive("request_deadline", request_deadline)
    check_positive("page_deadline", page_deadline)
    check_positive("max_response_bytes", max_response_bytes, whole=True)
    check_positive("max_bytes_ahead", max_bytes_ahead, whole=True)
    check_positive("page_ceiling", page_ceiling, whole=True)
    if max_pages is not None:
        check_positive("max_pages", max_pages, whole=True)
    return check_base_url(base_url, allow_insecure_http=allow_insecure_http)
