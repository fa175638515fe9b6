"""The Octopush HTTP client core: auth, paging, retries and errors, in one place.

It imports neither Airflow nor dlt; the Airflow hook and the dlt source are thin adapters that
build an :class:`OctopushClient` and read from it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from functools import cached_property, partial
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
import requests
from requests.utils import get_environ_proxies

from octopush_provider.auth import OctopushAuth
from octopush_provider.conversations import Conversation
from octopush_provider.endpoint import CONVERSATIONS, MESSAGES, Endpoint
from octopush_provider.exceptions import (
    OctopushAuthError,
    OctopushCancelledError,
    OctopushConnectionError,
    OctopushError,
    OctopushRequestError,
    OctopushResponseError,
    OctopushServerError,
)
from octopush_provider.messages import (
    CONVERSATION_ID_PARAM,
    ConversationMessages,
    MessageParent,
    conversation_filter,
    read_conversation,
)
from octopush_provider.options import check_options
from octopush_provider.page import Tabulate, says_nothing_found
from octopush_provider.paging import Page, PageStream, StopCondition, StopReason
from octopush_provider.prefetch import DEFAULT_MAX_BYTES_AHEAD
from octopush_provider.redaction import excerpt, mask, redact, scrub_chain
from octopush_provider.retry import RetryPolicy, Throttle, parse_retry_after
from octopush_provider.settings import (
    CONVERSATIONS_PATH,
    DEFAULT_BASE_URL,
    DEFAULT_CONCURRENCY,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_PAGE_CEILING,
    DEFAULT_PAGE_DEADLINE,
    DEFAULT_PER_PAGE,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REQUEST_DEADLINE,
    ERROR_BODY_BYTES,
    FIRST_PAGE,
    MESSAGES_PATH,
    NON_JSON_ATTEMPTS,
    PAGE_PARAM,
    PER_PAGE_PARAM,
    RETRYABLE_STATUS_CODES,
    USER_AGENT,
)
from octopush_provider.transport import (
    BodyCutShort,
    BodyTooLarge,
    WatchedAdapter,
    deadline,
    read_body,
)

logger = logging.getLogger(__name__)

Timeout = float | tuple[float, float]


class _Transient(Exception):
    """An attempt failed in a way that another attempt may not.

    ``attempts`` caps the attempts this kind of failure deserves, below the retry policy's.
    """

    def __init__(
        self,
        error: OctopushError,
        *,
        retry_after: float | None = None,
        attempts: int | None = None,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.attempts = attempts


class OctopushClient:
    """Reads Octopush conversations page by page, surviving what a public API does.

    Nothing is sent until the first read; one keep-alive session serves every request, and one
    throttle slows every thread when either endpoint answers 429. ``concurrency`` pages (or
    conversations' messages) are fetched at once; ``where`` names the place the credentials
    come from (e.g. an Airflow connection) so that errors can point at it.
    ``request_deadline`` bounds each request in seconds (``timeout`` bounds each socket read),
    ``page_deadline`` each page, its retries and their waits included,
    ``max_response_bytes`` the decoded size of an answer, ``max_bytes_ahead`` the bodies a
    concurrent read holds ahead of its reader, ``max_pages``, when set, the pages a read may
    take (a stop, with a warning), and ``page_ceiling`` the pages past which a read fails (a
    server serving rows forever).
    """

    def __init__(
        self,
        *,
        api_login: str,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        path: str = CONVERSATIONS_PATH,
        messages_path: str = MESSAGES_PATH,
        per_page: int = DEFAULT_PER_PAGE,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: Timeout = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT),
        retry: RetryPolicy | None = None,
        allow_insecure_http: bool = False,
        where: str | None = None,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        page_deadline: float = DEFAULT_PAGE_DEADLINE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_pages: int | None = None,
        max_bytes_ahead: int = DEFAULT_MAX_BYTES_AHEAD,
        page_ceiling: int = DEFAULT_PAGE_CEILING,
    ) -> None:
        self.base_url = check_options(
            api_login=api_login,
            api_key=api_key,
            base_url=base_url,
            allow_insecure_http=allow_insecure_http,
            per_page=per_page,
            concurrency=concurrency,
            request_deadline=request_deadline,
            page_deadline=page_deadline,
            max_response_bytes=max_response_bytes,
            max_bytes_ahead=max_bytes_ahead,
            page_ceiling=page_ceiling,
            max_pages=max_pages,
        )
        self._list = CONVERSATIONS.at(self.base_url, path)
        self._messages = MESSAGES.at(self.base_url, messages_path)
        self.url = self._list.url
        self.messages_url = self._messages.url
        self.per_page = per_page
        self.concurrency = concurrency
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.where = where
        self.request_deadline = float(request_deadline)
        self.page_deadline = float(page_deadline)
        self.max_response_bytes = max_response_bytes
        self.max_pages = max_pages
        self.max_bytes_ahead = max_bytes_ahead
        self.page_ceiling = page_ceiling
        self._auth = OctopushAuth(api_login, api_key)
        self._throttle = Throttle()
        self._cancelled = threading.Event()
        self._templates: dict[str, tuple[requests.PreparedRequest, str]] = {}

    def __repr__(self) -> str:
        return (
            f"OctopushClient(url={self.url!r}, api_login={self._auth.api_login!r}, "
            f"api_key={mask(self._auth.api_key)!r})"
        )

    @cached_property
    def session(self) -> requests.Session:
        """The keep-alive session, built on first use with a pool for every concurrent read."""
        session = requests.Session()
        # requests re-reads every environment variable on each request to find proxies, which
        # costs about a millisecond a page on a busy host: resolve them once, here, instead.
        session.proxies = get_environ_proxies(self.url)
        session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        session.trust_env = False
        session.auth = self._auth
        session.headers["User-Agent"] = USER_AGENT
        session.headers["Accept"] = "application/json"
        # The messages of a load are read while the list's prefetching threads may still be
        # fetching: twice the concurrency, so that no connection is opened only to be dropped.
        adapter = WatchedAdapter(pool_connections=1, pool_maxsize=2 * self.concurrency)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def _request(self, url: str, params: dict[str, str]) -> requests.PreparedRequest:
        """The GET of ``url`` with ``params``, from a template prepared once per URL.

        ``Session.get`` prepares every request anew (headers merged, auth applied, URL parsed and
        requoted) and ``Session.send`` handles cookies, hooks and redirects that these reads do
        not use: half the CPU of a request to a nearby server, and a thousand requests a load.
        """
        prepared = self._templates.get(url)
        if prepared is None:
            template = self.session.prepare_request(requests.Request("GET", url))
            joint = "&" if urlsplit(template.url).query else "?"  # a path may bring a query
            prepared = self._templates[url] = (template, joint)
        template, joint = prepared
        request = template.copy()
        request.url = f"{template.url}{joint}{urlencode(params)}"
        return request

    @property
    def _page_wait(self) -> float:
        """The longest a page can take: its deadline, plus one wait at the shared throttle."""
        return self.page_deadline + self.retry.budget + 1.0

    def close(self) -> None:
        """Close the session's connections, if any were opened."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]
            self._templates.clear()

    def cancel(self) -> None:
        """Stop every read of this client, from any thread (e.g. a task's ``on_kill``).

        A request under way finishes, but no page is returned after this: every read, its
        prefetching threads and any wait for a retry raise :class:`OctopushCancelledError`.
        """
        self._cancelled.set()

    def _raise_if_cancelled(self, number: int) -> None:
        if self._cancelled.is_set():
            raise OctopushCancelledError(f"the read was cancelled before page {number} was read")

    def __enter__(self) -> OctopushClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def iter_pages(
        self,
        *,
        stop_when: StopCondition | None = None,
        max_pages: int | None = None,
        concurrency: int | None = None,
        tabulate: Tabulate | None = None,
    ) -> PageStream:
        """Pages of conversations, newest first as the API serves them.

        ``stop_when`` is asked after each page is yielded whether to read on; when it first says
        stop, one more page is read and it is asked again (at most one request more a read, so
        that an early stop can prove the order across the page it skips). ``max_pages``
        overrides the client's. ``tabulate`` is tried on each page's body before it is
        parsed (see :class:`Page`). The returned stream's ``report`` tells pages, requests,
        retries and why the read stopped.
        """
        endpoint = replace(self._list, tabulate=tabulate)
        return PageStream(
            partial(self._fetch, per_page=self.per_page, retry=self.retry, endpoint=endpoint),
            endpoint=endpoint,
            concurrency=concurrency or self.concurrency,
            stop_when=stop_when,
            confirm_stop=stop_when is not None,
            max_pages=max_pages or self.max_pages,
            page_wait=self._page_wait,
            max_bytes_ahead=self.max_bytes_ahead,
            page_ceiling=self.page_ceiling,
            cancelled=self._cancelled.is_set,
        )

    def iter_conversations(self, **options: Any) -> Iterator[Conversation]:
        """Every conversation, one at a time; takes the options of :meth:`iter_pages`."""
        for page in self.iter_pages(**options):
            yield from page

    def iter_messages(
        self,
        conversation_id: str,
        *,
        stop_when: StopCondition | None = None,
        max_pages: int | None = None,
    ) -> PageStream:
        """Pages of one conversation's messages, read in order.

        The id is sent as the list gives it when it starts with ``cid_``, else with that prefix.
        Nothing here checks that the answer is about that conversation: :meth:`read_messages`
        does, against what the list says of it.
        """
        endpoint = self._messages.asking(
            {CONVERSATION_ID_PARAM: conversation_filter(conversation_id)}
        )
        fetch = partial(self._fetch, per_page=self.per_page, retry=self.retry, endpoint=endpoint)
        return PageStream(
            fetch,
            endpoint=endpoint,
            stop_when=stop_when,
            max_pages=max_pages or self.max_pages,
            page_wait=self._page_wait,
            page_ceiling=self.page_ceiling,
            log_level=logging.DEBUG,
            cancelled=self._cancelled.is_set,
        )

    def read_messages(
        self, parents: Iterable[MessageParent], *, concurrency: int | None = None
    ) -> Iterator[ConversationMessages]:
        """The checked messages of each conversation, in the order given.

        ``concurrency`` conversations (default: the client's) are read at once, and at most
        twice that many are read ahead of the caller, so memory does not grow with the input.
        """
        workers = concurrency or self.concurrency
        pending: list[Future[ConversationMessages]] = []
        with ThreadPoolExecutor(workers, thread_name_prefix="octopush-messages") as pool:
            try:
                for parent in parents:
                    pending.append(pool.submit(read_conversation, self, parent))
                    if len(pending) >= 2 * workers:
                        yield pending.pop(0).result()
                while pending:
                    yield pending.pop(0).result()
            finally:
                for future in pending:
                    future.cancel()

    def check_access(self) -> None:
        """One cheap authenticated request; raises the error a read would raise."""
        self._fetch(
            FIRST_PAGE,
            per_page=1,
            retry=RetryPolicy(max_attempts=2, budget=10.0),
            endpoint=self._list,
        )

    def fetch_page(self, number: int) -> Page:
        """One page, retried under the client's policy."""
        return self._fetch(number, per_page=self.per_page, retry=self.retry, endpoint=self._list)

    def _fetch(self, number: int, *, per_page: int, retry: RetryPolicy, endpoint: Endpoint) -> Page:
        slept = 0.0
        started = time.monotonic()
        ends_at = started + self.page_deadline
        for attempt in range(1, retry.max_attempts + 1):
            self._throttle.wait(self._cancelled)
            self._raise_if_cancelled(number)
            try:
                rows, table, end, size = self._attempt(
                    number, per_page, endpoint, seconds=ends_at - time.monotonic()
                )
                self._raise_if_cancelled(number)
                return Page(
                    number=number,
                    rows=rows,
                    table=table,
                    attempts=attempt,
                    end=end,
                    size=size,
                )
            except _Transient as failure:
                error = failure.error
                delay = retry.delay(attempt, failure.retry_after)
                attempts = min(retry.max_attempts, failure.attempts or retry.max_attempts)
                if attempt >= attempts or slept + delay > retry.budget:
                    break
                if time.monotonic() + delay >= ends_at:
                    error.args = (f"{error} (page_deadline={self.page_deadline:g}s reached)",)
                    break
                logger.warning(
                    "Octopush page %d: %s; retry %d of %d in %.1fs",
                    number,
                    error,
                    attempt,
                    attempts - 1,
                    delay,
                )
                if failure.retry_after is not None or getattr(error, "status_code", 0) == 429:
                    self._throttle.hold(delay)
                else:
                    self._cancelled.wait(delay)
                slept += delay
            except OctopushError as final:
                final.attempts = attempt
                scrub_chain(final, secrets=(self._auth.api_key,))
                raise
        error.args = (
            f"{error} (gave up on page {number} after {attempt} attempt(s) "
            f"in {time.monotonic() - started:.1f}s)",
        )
        error.attempts = attempt
        scrub_chain(error, secrets=(self._auth.api_key,))
        raise error

    def _attempt(
        self, number: int, per_page: int, endpoint: Endpoint, *, seconds: float
    ) -> tuple[list[Conversation], Any, StopReason | None, int]:
        params = {**endpoint.params, PAGE_PARAM: str(number), PER_PAGE_PARAM: str(per_page)}
        limit = f"request_deadline={self.request_deadline:g}s"
        if seconds < self.request_deadline:
            limit = f"the {max(0.0, seconds):.1f}s left of page_deadline={self.page_deadline:g}s"
        with deadline(max(0.0, min(self.request_deadline, seconds))) as watch:
            try:
                request = self._request(endpoint.url, params)
                session = self.session
                response = session.get_adapter(endpoint.url).send(
                    request,
                    stream=True,
                    timeout=self.timeout,
                    verify=session.verify,  # type: ignore[arg-type]  # always set above
                    proxies=session.proxies,
                )
                with response:
                    body = self._read(response, number)
            except requests.RequestException as error:
                raise self._failed(error, cut_off=watch.expired, limit=limit) from None
            except BodyCutShort as error:
                if watch.expired:
                    raise self._failed(None, cut_off=True, limit=limit) from None
                message = f"Octopush's answer for page {number} at {self.url}: {error}"
                raise _Transient(OctopushConnectionError(message)) from None
        if watch.expired:  # a body read up to a connection the watchdog closed may be cut short
            raise self._failed(None, cut_off=True, limit=limit)
        return (*self._interpret(response, body, number, endpoint, per_page), len(body))

    def _read(self, response: requests.Response, number: int) -> bytes:
        if not 200 <= response.status_code < 300:
            return read_body(response, limit=ERROR_BODY_BYTES, truncate=True)
        try:
            return read_body(response, limit=self.max_response_bytes)
        except BodyTooLarge:
            raise OctopushResponseError(
                f"Octopush answered page {number} with more than {self.max_response_bytes} "
                "bytes, far more than a page of conversations: refused without reading the "
                "rest. If the pages really are that large, raise max_response_bytes or lower "
                "per_page"
            ) from None

    def _failed(
        self, error: requests.RequestException | None, *, cut_off: bool, limit: str
    ) -> _Transient:
        """The retryable error for a request that failed on the way or was cut off at ``limit``."""
        if cut_off:
            message = f"Octopush did not finish answering within {limit} at {self.url}"
        elif isinstance(error, requests.Timeout):
            message = f"Octopush did not answer in time at {self.url}: {error}"
        else:
            message = (
                f"could not read from Octopush at {self.url} ({type(error).__name__}): "
                f"check the base URL{self._of_where()} and the network"
            )
        return _Transient(OctopushConnectionError(message))

    def _interpret(
        self,
        response: requests.Response,
        body: bytes,
        number: int,
        endpoint: Endpoint,
        per_page: int,
    ) -> tuple[list[Conversation], Any, StopReason | None]:
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
                f"api-login {self._auth.api_login!r} may not read conversations (403): give "
                f"this API key access to conversations in Octopush{self._of_where()}. "
                f"Response: {self._excerpt(body)}",
                status_code=status,
            )
        if status in RETRYABLE_STATUS_CODES:
            raise _Transient(
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
            self._check_count(len(keys), number, per_page)
            return keys, table, None
        items = self._parse_body(response, body, number)
        self._check_count(len(items), number, per_page)
        conversations = endpoint.parse(items, page=number)
        if conversations:
            return conversations, None, None
        end = StopReason.NO_CONVERSATIONS if number == FIRST_PAGE else StopReason.EMPTY_PAGE
        return [], None, end

    def _check_count(self, rows: int, number: int, per_page: int) -> None:
        """Refuse a page of more rows than asked: what is held in flight is sized by per_page."""
        if rows > per_page:
            raise OctopushResponseError(
                f"Octopush answered page {number} with {rows} rows when per_page={per_page} "
                "was asked: refused, as the API never sends more than it is asked for "
                "(check the base URL and path)"
            )

    def _parse_body(self, response: requests.Response, body: bytes, number: int) -> list[Any]:
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            # A truncated body or a proxy's error page may be gone on the next attempt; the same
            # answer twice will not be.
            raise _Transient(
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
                f"a list of conversations: {self._excerpt(body)}"
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
        return f" of {self.where}" if self.where else ""
