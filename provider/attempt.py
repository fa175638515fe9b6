"""One attempt at one page: the request, its status as a typed error, its body as a :class:`Page`.

An attempt runs under a deadline (the request's, or what is left of the page's) and reads at
most ``max_response_bytes`` of a body. What it cannot answer it raises: a final
:class:`~octopush_provider.exceptions.OctopushError` (401, 403, other 4xx, a redirect, a body
that is not a list of rows), or a :class:`~octopush_provider.retry.Transient` wrapping the error
that another attempt may not meet (a connection that failed, 429, 5xx, a body that is not JSON).
Whether to try again is the retry loop's to decide (:mod:`octopush_provider.retry_loop`).
Every text that quotes the server is masked and cut short by
:mod:`octopush_provider.redaction`.
"""

from __future__ import annotations

from typing import Any

import orjson
import requests

from octopush_provider.auth import OctopushAuth
from octopush_provider.endpoint import Endpoint
from octopush_provider.exceptions import (
    OctopushAuthError,
    OctopushConnectionError,
    OctopushRequestError,
    OctopushResponseError,
    OctopushServerError,
    of_where,
)
from octopush_provider.page import Page, Row, StopReason, says_nothing_found
from octopush_provider.redaction import excerpt, redact
from octopush_provider.retry import Transient, parse_retry_after
from octopush_provider.session import Sender, Timeout
from octopush_provider.settings import (
    ERROR_BODY_BYTES,
    FIRST_PAGE,
    NON_JSON_ATTEMPTS,
    PAGE_PARAM,
    PER_PAGE_PARAM,
    RETRYABLE_STATUS_CODES,
)
from octopush_provider.transport import BodyCutShort, BodyTooLarge, deadline, read_body

__all__ = ["Attempt"]


class Attempt:
    """Sends one request for a page of an endpoint and tells what the answer means.

    Args:
        sender: the session requests go out on.
        auth: the credentials; errors name the login and never show the key.
        timeout: ``requests``' timeout for each socket read.
        request_deadline: the longest one request may take, in seconds.
        page_deadline: the page's deadline, named when what is left of it cuts a request short.
        max_response_bytes: the largest decoded body of a page that is read.
        where: the place the credentials come from (e.g. an Airflow connection), for errors.
    """

    def __init__(
        self,
        *,
        sender: Sender,
        auth: OctopushAuth,
        timeout: Timeout,
        request_deadline: float,
        page_deadline: float,
        max_response_bytes: int,
        where: str | None = None,
    ) -> None:
        self._sender = sender
        self._auth = auth
        self._timeout = timeout
        self._request_deadline = request_deadline
        self._page_deadline = page_deadline
        self._max_response_bytes = max_response_bytes
        self._where = where

    def __call__(self, endpoint: Endpoint, number: int, *, per_page: int, seconds: float) -> Page:
        """Page ``number`` of ``endpoint`` (its ``attempts`` is 1), within ``seconds``."""
        params = {**endpoint.params, PAGE_PARAM: str(number), PER_PAGE_PARAM: str(per_page)}
        limit = f"request_deadline={self._request_deadline:g}s"
        if seconds < self._request_deadline:
            limit = f"the {max(0.0, seconds):.1f}s left of page_deadline={self._page_deadline:g}s"
        with deadline(max(0.0, min(self._request_deadline, seconds))) as watch:
            try:
                response = self._sender.send(endpoint.url, params, timeout=self._timeout)
                with response:
                    body = self._read(response, number, endpoint)
            except requests.RequestException as error:
                raise self._failed(error, endpoint, cut_off=watch.expired, limit=limit) from None
            except BodyCutShort as error:
                if watch.expired:
                    raise self._failed(None, endpoint, cut_off=True, limit=limit) from None
                message = f"Octopush's answer for page {number} at {endpoint.url}: {error}"
                raise Transient(OctopushConnectionError(message)) from None
        if watch.expired:  # a body read up to a connection the watchdog closed may be cut short
            raise self._failed(None, endpoint, cut_off=True, limit=limit)
        rows, table, end = self._interpret(response, body, number, endpoint, per_page)
        return Page(number=number, rows=rows, table=table, end=end, size=len(body))

    def _read(self, response: requests.Response, number: int, endpoint: Endpoint) -> bytes:
        if not 200 <= response.status_code < 300:
            return read_body(response, limit=ERROR_BODY_BYTES, truncate=True)
        try:
            return read_body(response, limit=self._max_response_bytes)
        except BodyTooLarge:
            raise OctopushResponseError(
                f"Octopush answered page {number} with more than {self._max_response_bytes} "
                f"bytes, far more than a page of {endpoint.noun}: refused without reading the "
                "rest. If the pages really are that large, raise max_response_bytes or lower "
                "per_page"
            ) from None

    def _failed(
        self,
        error: requests.RequestException | None,
        endpoint: Endpoint,
        *,
        cut_off: bool,
        limit: str,
    ) -> Transient:
        """The retryable error for a request that failed on the way or was cut off at ``limit``."""
        if cut_off:
            message = f"Octopush did not finish answering within {limit} at {endpoint.url}"
        elif isinstance(error, requests.Timeout):
            message = f"Octopush did not answer in time at {endpoint.url}: {error}"
        else:
            message = (
                f"could not read from Octopush at {endpoint.url} ({type(error).__name__}): "
                f"check the base URL{self._of_where()} and the network"
            )
        return Transient(OctopushConnectionError(message))

    def _interpret(
        self,
        response: requests.Response,
        body: bytes,
        number: int,
        endpoint: Endpoint,
        per_page: int,
    ) -> tuple[list[Row], Any, StopReason | None]:
        status = response.status_code
        if status == 404:
            # Past the end; on page 1 it means the account has no conversations yet, when the
            # API says so: a wrong base URL or path answers 404 too.
            if number != FIRST_PAGE:
                return [], None, StopReason.NOT_FOUND
            if says_nothing_found(body):
                return [], None, StopReason.NO_CONVERSATIONS
            raise OctopushRequestError(
                f"Octopush answered 404 for page 1 of {endpoint.url} with an answer that is not "
                f"its 'no conversation found': check the base URL and path{self._of_where()}. "
                f"Response: {self._excerpt(body)}",
                status_code=status,
            )
        if status == 401:
            raise OctopushAuthError(
                f"Octopush rejected the credentials (401) of api-login "
                f"{self._auth.api_login!r}: check the API login and API key{self._of_where()}. "
                f"Response: {self._excerpt(body)}",
                status_code=status,
            )
        if status == 403:
            raise OctopushAuthError(
                f"api-login {self._auth.api_login!r} may not read {endpoint.noun} (403): give "
                f"this API key access to {endpoint.noun} in Octopush{self._of_where()}. "
                f"Response: {self._excerpt(body)}",
                status_code=status,
            )
        if status in RETRYABLE_STATUS_CODES:
            raise Transient(
                self._server_error(response, body, number),
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if 300 <= status < 400:
            raise OctopushResponseError(
                f"Octopush redirected page {number} ({status}) to "
                f"{self._redact(response.headers.get('Location', ''))!r}: set the base URL"
                f"{self._of_where()} "
                "to the final address"
            )
        if 400 <= status < 500:
            raise OctopushRequestError(
                f"Octopush refused the request for page {number} ({status}): {self._excerpt(body)}",
                status_code=status,
            )
        if status >= 500 or status < 200:
            raise self._server_error(response, body, number)
        tabulated = endpoint.tabulate(body) if endpoint.tabulate is not None else None
        if tabulated is not None and tabulated[1]:  # an empty page ends the read below
            table, keys = tabulated
            _check_count(len(keys), number, per_page)
            return keys, table, None
        items = self._parse_body(response, body, number, endpoint)
        _check_count(len(items), number, per_page)
        rows = endpoint.parse(items, page=number)
        if rows:
            return rows, None, None
        end = StopReason.NO_CONVERSATIONS if number == FIRST_PAGE else StopReason.EMPTY_PAGE
        return [], None, end

    def _parse_body(
        self, response: requests.Response, body: bytes, number: int, endpoint: Endpoint
    ) -> list[Any]:
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            # A truncated body or a proxy's error page may be gone on the next attempt; the same
            # answer twice will not be.
            raise Transient(
                OctopushResponseError(
                    f"Octopush answered page {number} with a body that is not JSON ({error}; "
                    f"{response.headers.get('Content-Type', 'no content type')}, "
                    f"{len(body)} bytes): {self._excerpt(body)}"
                ),
                attempts=NON_JSON_ATTEMPTS,
            ) from None
        if not isinstance(items, list):
            raise OctopushResponseError(
                f"Octopush answered page {number} with a JSON {type(items).__name__} instead of "
                f"a list of {endpoint.noun}: {self._excerpt(body)}"
            )
        return items

    def _server_error(
        self, response: requests.Response, body: bytes, number: int
    ) -> OctopushServerError:
        return OctopushServerError(
            f"Octopush answered {response.status_code} for page {number}. "
            f"Response: {self._excerpt(body)}",
            status_code=response.status_code,
        )

    def _excerpt(self, body: bytes) -> str:
        return excerpt(body, secrets=(self._auth.api_key,))

    def _redact(self, text: str) -> str:
        return redact(text, secrets=(self._auth.api_key,))

    def _of_where(self) -> str:
        return of_where(self._where)


def _check_count(rows: int, number: int, per_page: int) -> None:
    """Refuse a page of more rows than asked: what is held in flight is sized by per_page."""
    if rows > per_page:
        raise OctopushResponseError(
            f"Octopush answered page {number} with {rows} rows when per_page={per_page} "
            "was asked: refused, as the API never sends more than it is asked for "
            "(check the base URL and path)"
        )
