"""The Octopush HTTP client: the facade the Airflow hook and the dlt source read through.

It imports neither Airflow nor dlt. A read flows one way through modules of one job each::

    OctopushClient (this module)    settings checked (options), the public reads, cancellation
      -> PageStream (paging)        which pages to read, in what order, when the list ended
        -> RetryLoop (retry_loop)   attempts, waits, throttle and budgets of one page
          -> Attempt (attempt)      one request, its status as an error, its body as a Page
            -> Sender (session)     the keep-alive session; deadlines and size caps (transport)

What tells the conversations list from a conversation's messages is data
(:mod:`octopush_provider.endpoint`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Any

import requests

from octopush_provider.attempt import Attempt
from octopush_provider.auth import OctopushAuth
from octopush_provider.conversations import Conversation
from octopush_provider.endpoint import CONVERSATIONS, MESSAGES, Endpoint
from octopush_provider.messages import (
    CONVERSATION_ID_PARAM,
    ConversationMessages,
    MessageParent,
    MessagesGuard,
    conversation_filter,
)
from octopush_provider.options import check_options
from octopush_provider.page import Page, Tabulate
from octopush_provider.paging import PageStream, StopCondition
from octopush_provider.prefetch import DEFAULT_MAX_BYTES_AHEAD
from octopush_provider.redaction import mask
from octopush_provider.retry import RetryPolicy, Throttle
from octopush_provider.retry_loop import RetryLoop
from octopush_provider.session import Sender, Timeout
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
    FIRST_PAGE,
    MESSAGES_PATH,
)

__all__ = ["OctopushClient", "Timeout"]

# check_access asks little of a server that may be down: two tries, ten seconds of waits.
ACCESS_RETRY = RetryPolicy(max_attempts=2, budget=10.0)


class OctopushClient:
    """Reads Octopush conversations page by page, surviving what a public API does.

    Nothing is sent until the first read; one keep-alive session serves every request, and one
    throttle slows every thread when either endpoint answers 429.

    Args:
        api_login: the account's API login.
        api_key: the account's API key; never shown in a repr, a log line or an error.
        base_url: the API's base URL, https (plain http only to this machine).
        path: where the conversations list lives below ``base_url``.
        messages_path: where the messages endpoint lives below ``base_url``.
        per_page: rows asked for per request.
        concurrency: pages (or conversations' messages) fetched at once.
        timeout: ``requests``' timeout, bounding each socket read.
        retry: the retry policy of every page (default: :class:`RetryPolicy`'s).
        allow_insecure_http: let plain http carry the key to another host (proxies only).
        where: the place the credentials come from (e.g. an Airflow connection), named in
            errors so that they point at it.
        request_deadline: seconds one request may take, however slowly the API answers.
        page_deadline: seconds one page may take, its retries and their waits included.
        max_response_bytes: the decoded size past which an answer is refused.
        max_pages: when set, the pages a read may take (a stop, with a warning).
        max_bytes_ahead: the bodies a concurrent read holds ahead of its reader, in bytes.
        page_ceiling: the pages past which a read fails (a server serving rows forever).
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
        self._cancelled = threading.Event()
        # The messages of a load are read while the list's prefetching threads may still be
        # fetching: twice the concurrency, so that no connection is opened only to be dropped.
        self._sender = Sender(auth=self._auth, proxied_url=self.url, pool_size=2 * concurrency)
        self._attempt = Attempt(
            sender=self._sender,
            auth=self._auth,
            timeout=timeout,
            request_deadline=self.request_deadline,
            page_deadline=self.page_deadline,
            max_response_bytes=max_response_bytes,
            where=where,
        )
        self._retries = RetryLoop(
            page_deadline=self.page_deadline,
            throttle=Throttle(),
            cancelled=self._cancelled,
            secrets=(api_key,),
        )

    def __repr__(self) -> str:
        return (
            f"OctopushClient(url={self.url!r}, api_login={self._auth.api_login!r}, "
            f"api_key={mask(self._auth.api_key)!r})"
        )

    @property
    def session(self) -> requests.Session:
        """The keep-alive session, built on first use with a pool for every concurrent read."""
        return self._sender.session

    def close(self) -> None:
        """Close the session's connections, if any were opened."""
        self._sender.close()

    def cancel(self) -> None:
        """Stop every read of this client, from any thread (e.g. a task's ``on_kill``).

        A request under way finishes, but no page is returned after this: every read, its
        prefetching threads and any wait for a retry raise :class:`OctopushCancelledError`.
        """
        self._cancelled.set()

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
            page_wait=self._retries.page_wait(self.retry),
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
            page_wait=self._retries.page_wait(self.retry),
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
                    pending.append(pool.submit(self._read_conversation, parent))
                    if len(pending) >= 2 * workers:
                        yield pending.pop(0).result()
                while pending:
                    yield pending.pop(0).result()
            finally:
                for future in pending:
                    future.cancel()

    def _read_conversation(self, parent: MessageParent) -> ConversationMessages:
        guard = MessagesGuard(parent)
        stream = self.iter_messages(
            parent.conversation_id, stop_when=guard.enough, max_pages=guard.max_pages
        )
        return guard.collect(stream)

    def check_access(self) -> None:
        """One cheap authenticated request; raises the error a read would raise."""
        self._fetch(FIRST_PAGE, per_page=1, retry=ACCESS_RETRY, endpoint=self._list)

    def fetch_page(self, number: int) -> Page:
        """One page, retried under the client's policy."""
        return self._fetch(number, per_page=self.per_page, retry=self.retry, endpoint=self._list)

    def _fetch(self, number: int, *, per_page: int, retry: RetryPolicy, endpoint: Endpoint) -> Page:
        def attempt(seconds: float) -> Page:
            return self._attempt(endpoint, number, per_page=per_page, seconds=seconds)

        return self._retries.fetch(number, attempt, retry=retry)
