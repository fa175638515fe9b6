"""A local HTTP server that answers like Octopush's conversations list and messages endpoints.

The connector is only as good as the failures it has been tested against, and the real API can't
be told to misbehave on cue. This server speaks real HTTP/1.1 with keep-alive, interprets bad
parameters leniently as the reference page describes, and can be told to fail in every way a
public API does (429, 5xx, HTML pages, error objects, truncated bodies, resets, slowness,
redirects), to page in ways a buggy one does (pages of varying sizes, a few pages served in a
loop, the api-key echoed in error bodies) or to change its data while a client pages through
it. Only the standard library, orjson and pendulum.

The messages endpoint reads its ``conversation_id`` filter only in the documented form
``cid_{id}``; anything else (or an id listed in ``unreadable_ids``) is ignored, as the real API
ignores what it cannot interpret, and the answer holds every conversation's messages. Its
contact filters (``phone_number``, ``email``, ``facebook_id``, ``contact``) are read as
:mod:`~octopush_provider.sandbox.filters` describes.
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

import orjson

from octopush_provider.sandbox.data import ConversationStore
from octopush_provider.sandbox.filters import contact_filter

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_LOGIN",
    "FAULT_KINDS",
    "READ_ONLY_LOGIN",
    "Fault",
    "RequestRecord",
    "SandboxServer",
    "interpret_int",
]

# Sandbox-only demo credentials: they open nothing but this local server.
DEFAULT_API_LOGIN = "sandbox@example.com"
DEFAULT_API_KEY = "sandbox-api-key"
READ_ONLY_LOGIN = "readonly@example.com"

BASE_PATH = "/v1/public"
LIST_PATH = f"{BASE_PATH}/conversations/list"
MESSAGES_PATH = f"{BASE_PATH}/conversations/messages/list"
DEFAULT_PAGE = 1
DEFAULT_PER_PAGE = 100
DEFAULT_MESSAGES_PER_PAGE = 50
_CONVERSATION_FILTER = re.compile(r"cid_([0-9a-f]+)")
PAST_END_MODES = ("empty", "404")
FAULT_KINDS = (
    "429", "500", "502", "503", "400", "html", "html-502",
    "error-object", "truncated", "reset", "slow", "redirect",
)  # fmt: skip
DEFAULT_RANDOM_FAULTS = ("429", "500", "503", "html", "truncated", "reset")
RANDOM_SLOW_DELAY = 1.0
DEFAULT_CONVERSATIONS = 1000
_POLL_INTERVAL = 0.02  # how long stop() may wait for the accept loop to notice

_STATUS_ERRORS = {
    400: (1000, "Bad request"),
    401: (1001, "Authentication failed: check the api-login and api-key headers"),
    403: (1003, "This api-login is not allowed to view conversations"),
    404: (1004, "No conversation found"),
    429: (1029, "Too many requests, slow down"),
    500: (1500, "Internal server error"),
    502: (1502, "Bad gateway"),
    503: (1503, "Service temporarily unavailable"),
}
_HTML_ERROR = (
    b"<!DOCTYPE html><html><head><title>Maintenance</title></head>"
    b"<body><h1>We'll be back soon</h1><p>Octopush is under maintenance.</p></body></html>"
)
_HTML_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    b"</center><hr><center>nginx</center></body></html>"
)
_ERROR_OBJECT = {"code": 240, "message": "Account temporarily unavailable, try again later"}


def interpret_int(raw: str | None, *, default: int) -> int:
    """Read a query parameter as Octopush does: cast it, else strip what's not a digit, else ignore.

    ``"2"`` and ``"2.0"`` give 2, ``"2abc"`` and ``"-2"`` give 2; nothing usable, or 0, gives
    ``default``.
    """
    if raw is None:
        return default
    try:
        value = abs(int(raw))
    except ValueError:
        try:
            value = abs(int(float(raw)))
        except (ValueError, OverflowError):
            digits = "".join(ch for ch in raw if ch in "0123456789")
            try:
                value = int(digits) if digits else 0
            except ValueError:  # more digits than int() accepts
                value = 0
    return value or default


@dataclass(frozen=True, slots=True)
class Fault:
    """A misbehaviour to show on the next ``times`` requests for ``page`` (any page if None)."""

    kind: str
    page: int | None = None
    times: int = 1
    retry_after: str | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {self.kind!r}")
        if self.times < 1 or self.delay < 0 or (self.page is not None and self.page < 1):
            raise ValueError(f"times and page must be >= 1 and delay >= 0: {self!r}")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the sandbox received and answered; ``status`` is None when no response was sent."""

    path: str
    query: Mapping[str, str]
    page: int
    per_page: int
    status: int | None
    fault: str | None
    login: str | None
    received_at: float = 0.0  # time.monotonic() when the request was answered


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_GET(self) -> None:
        self.server.answer(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: a line per request on stderr drowns test and benchmark output."""

    def send_body(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        truncate: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if truncate:
            # Promise the whole body, send half, hang up: what a proxy dying mid-response does.
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)

    def send_error_object(
        self, status: int, *, message: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        code, default_message = _STATUS_ERRORS[status]
        error: dict[str, Any] = {"code": code, "message": message or default_message}
        if self.server.echo_key:
            # What a debugging proxy or a careless API does: show the request back, key and all.
            key = self.headers.get("api-key", "")
            error["request"] = {"api-key": key, "url": f"{self.path}&api-key={quote_plus(key)}"}
        self.send_body(status, orjson.dumps(error), headers=headers)

    def reset(self) -> None:
        """Drop the connection with a TCP reset instead of an answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        # Closing here (not in shutdown_request) avoids the FIN that shutdown(SHUT_WR) would send.
        self.rfile.close()
        self.connection.close()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], answer: Callable[[_Handler], None]) -> None:
        self.answer = answer
        self.echo_key = False
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Without TCP_NODELAY, keep-alive requests stall ~40 ms on delayed ACKs.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._open_lock:
            self._open.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up (timeouts, resets); report anything else."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Wake keep-alive handler threads so idle connections don't outlive the server."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


_Reply = tuple[int | None, str | None, Callable[[], None]]
"""Status to log (None: no response), fault kind to log, and how to send the response."""


class SandboxServer:
    """The sandbox: a conversations-list endpoint over a store, with knobs to make it misbehave.

    ``with SandboxServer(store) as sandbox:`` serves on a free port of 127.0.0.1 until the block
    ends; ``sandbox.url`` is the list endpoint. Attributes ``latency``, ``fault_rate``,
    ``fault_kinds``, ``churn_new``, ``churn_bump``, ``page_sizes``, ``page_cycle`` and
    ``unreadable_ids`` can change while it runs. Faults, churn and ``before_request`` count
    requests to either endpoint.

    ``page_sizes`` maps page numbers to the rows they serve instead of ``per_page`` (the pages
    after one start where it ended: nothing is skipped); ``page_cycle`` serves only that many
    pages, over and over (page ``cycle + 1`` is page 1 again), as a server that half-ignores
    ``page`` would; ``echo_key`` puts the api-key a request carried in every error body.
    """

    def __init__(
        self,
        store: ConversationStore | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_login: str = DEFAULT_API_LOGIN,
        api_key: str = DEFAULT_API_KEY,
        read_only_login: str = READ_ONLY_LOGIN,
        max_per_page: int = 1000,
        past_end: str = "empty",
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_kinds: tuple[str, ...] = DEFAULT_RANDOM_FAULTS,
        fault_seed: int = 7,
        churn_new: int = 0,
        churn_bump: int = 0,
        page_param: str = "page",
        page_sizes: Mapping[int, int] | None = None,
        page_cycle: int | None = None,
        echo_key: bool = False,
    ) -> None:
        if max_per_page < 1:
            raise ValueError(f"max_per_page must be >= 1, got {max_per_page}")
        if past_end not in PAST_END_MODES:
            raise ValueError(f"past_end must be one of {PAST_END_MODES}, got {past_end!r}")
        unknown = set(fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if any(page < 1 or size < 1 for page, size in (page_sizes or {}).items()):
            raise ValueError(f"page_sizes must map pages >= 1 to sizes >= 1: {page_sizes}")
        if page_cycle is not None and page_cycle < 1:
            raise ValueError(f"page_cycle must be >= 1, got {page_cycle}")
        if store is None:
            store = ConversationStore.generate(DEFAULT_CONVERSATIONS)
        self._store = store
        self._address = (host, port)
        self.api_login = api_login
        self.api_key = api_key
        self.read_only_login = read_only_login
        self.max_per_page = max_per_page
        # The query parameter read as the page number. Another name makes the server ignore the
        # client's ``page``, as the real API ignores what it cannot interpret, and serve page 1.
        self.page_param = page_param
        self.past_end = past_end
        self.latency = latency
        self.fault_rate = fault_rate
        self.fault_kinds = fault_kinds
        self.churn_new = churn_new
        self.churn_bump = churn_bump
        self.page_sizes = dict(page_sizes or {})
        self.page_cycle = page_cycle
        self._echo_key = echo_key
        # Conversation ids the messages endpoint cannot read: it ignores the filter for them.
        self.unreadable_ids: set[str] = set()
        self._fault_rng = random.Random(fault_seed)
        self._lock = threading.Lock()
        # Held while a request's due changes run and its rows are read, as one step.
        self._serving = threading.Lock()
        self._faults: list[Fault] = []
        self._actions: dict[int, list[Callable[[ConversationStore], object]]] = {}
        self._requests: list[RequestRecord] = []
        self._list_count = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> ConversationStore:
        """The conversations being served; mutate it to change what clients see."""
        return self._store

    @property
    def echo_key(self) -> bool:
        """Whether error bodies show the api-key the request carried."""
        return self._echo_key

    @echo_key.setter
    def echo_key(self, value: bool) -> None:
        self._echo_key = value
        if self._httpd is not None:
            self._httpd.echo_key = value

    @property
    def base_url(self) -> str:
        """Base URL of the public API, e.g. ``http://127.0.0.1:54321/v1/public``."""
        if self._httpd is None:
            raise RuntimeError("the sandbox is not running: call start() or use it in a with block")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{BASE_PATH}"

    @property
    def url(self) -> str:
        """URL of the conversations-list endpoint."""
        return self.base_url + LIST_PATH.removeprefix(BASE_PATH)

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the requests received since start or the last ``clear_requests()``."""
        with self._lock:
            return list(self._requests)

    def start(self) -> SandboxServer:
        """Bind the socket and serve from a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("the sandbox is already running")
        self._httpd = _HTTPServer(self._address, self._answer)
        self._httpd.echo_key = self._echo_key
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name="octopush-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and close the socket; a no-op when stopped."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def add_fault(
        self,
        kind: str,
        *,
        page: int | None = None,
        times: int = 1,
        retry_after: str | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """Misbehave on the next ``times`` authenticated list requests for ``page`` (or any)."""
        fault = Fault(kind, page=page, times=times, retry_after=retry_after, delay=delay)
        with self._lock:
            self._faults.append(fault)
        return fault

    def before_request(self, n: int, action: Callable[[ConversationStore], object]) -> None:
        """Run ``action(store)`` just before answering the ``n``-th list request (1-based)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        with self._lock:
            self._actions.setdefault(n, []).append(action)

    def clear_faults(self) -> None:
        """Drop every queued fault that has not fired yet."""
        with self._lock:
            self._faults.clear()

    def clear_requests(self) -> None:
        """Forget logged requests and restart the list-request count used by before_request."""
        with self._lock:
            self._requests.clear()
            self._list_count = 0

    def _answer(self, handler: _Handler) -> None:
        if self.latency > 0:
            time.sleep(self.latency)
        target = urlsplit(handler.path)
        query = dict(parse_qsl(target.query, keep_blank_values=True))
        page = interpret_int(query.get(self.page_param), default=DEFAULT_PAGE)
        if self.page_cycle is not None:
            page = (page - 1) % self.page_cycle + 1
        default_per_page = DEFAULT_MESSAGES_PER_PAGE if target.path == MESSAGES_PATH else None
        per_page = interpret_int(
            query.get("per_page"), default=default_per_page or DEFAULT_PER_PAGE
        )
        per_page = min(per_page, self.max_per_page)
        login = handler.headers.get("api-login")
        key = handler.headers.get("api-key")
        rows: Callable[[], list[Any] | None]
        if target.path == LIST_PATH:
            rows = partial(self._rows, page, per_page)
            status, fault, send = self._reply(handler, page, rows, login, key)
        elif target.path == MESSAGES_PATH:
            rows = partial(self._messages, query, page, per_page)
            status, fault, send = self._reply(handler, page, rows, login, key)
        else:
            message = f"Unknown endpoint {target.path}"
            status, fault = 404, None
            send = partial(handler.send_error_object, 404, message=message)
        record = RequestRecord(
            handler.path, query, page, per_page, status, fault, login, time.monotonic()
        )
        # Logged before sending, so a client that got its answer always finds it in the log.
        with self._lock:
            self._requests.append(record)
        send()

    def _messages(self, query: Mapping[str, str], page: int, per_page: int) -> list[Any] | None:
        """The messages a filtered request gets; None when the conversation does not exist."""
        match = contact_filter(query)
        wanted = _CONVERSATION_FILTER.fullmatch(query.get("conversation_id", ""))
        if wanted and wanted.group(1) not in self.unreadable_ids:
            messages = self._store.messages(wanted.group(1), match)
            if messages is None:
                return None
            return messages[(page - 1) * per_page : page * per_page]
        return self._store.messages_page(page, per_page, match)

    def _reply(
        self,
        handler: _Handler,
        page: int,
        rows: Callable[[], list[Any] | None],
        login: str | None,
        key: str | None,
    ) -> _Reply:
        # The changes due before a request and the rows it reads are one step, as on a real
        # server: two requests in flight never both read the list as it was before both changes.
        with self._serving:
            self._run_actions()
            served = rows()
        if login not in (self.api_login, self.read_only_login) or key != self.api_key:
            return 401, None, partial(handler.send_error_object, 401)
        if login == self.read_only_login:
            return 403, None, partial(handler.send_error_object, 403)
        fault = self._take_fault(page)
        kind = fault.kind if fault else None
        if fault is None or fault.kind == "slow":
            time.sleep(fault.delay if fault else 0.0)
            return self._reply_with_rows(handler, served, kind)
        if fault.kind == "truncated":
            body = orjson.dumps(served or [])
            return None, kind, partial(handler.send_body, 200, body, truncate=True)
        if fault.kind == "reset":
            return None, kind, handler.reset
        if fault.kind in ("html", "html-502"):
            status, body = (200, _HTML_ERROR) if fault.kind == "html" else (502, _HTML_502)
            html = "text/html; charset=utf-8"
            return status, kind, partial(handler.send_body, status, body, content_type=html)
        if fault.kind == "redirect":
            # Where a misconfigured gateway sends clients: the key in the query string.
            location = f"{self.url}?page={page}&api-key={quote(key or '', safe='')}"
            return 302, kind, partial(handler.send_body, 302, b"", headers={"Location": location})
        if fault.kind == "error-object":
            return 200, kind, partial(handler.send_body, 200, orjson.dumps(_ERROR_OBJECT))
        status = int(fault.kind)
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        return status, kind, partial(handler.send_error_object, status, headers=headers)

    def _reply_with_rows(
        self, handler: _Handler, rows: list[Any] | None, kind: str | None
    ) -> _Reply:
        if rows is None or (not rows and self.past_end == "404"):
            return 404, kind, partial(handler.send_error_object, 404)
        return 200, kind, partial(handler.send_body, 200, orjson.dumps(rows))

    def _rows(self, page: int, per_page: int) -> list[dict[str, Any]]:
        sizes = self.page_sizes
        if not sizes:
            return self._store.page(page, per_page)
        start = sum(sizes.get(number, per_page) for number in range(1, page))
        return self._store.page(1, start + sizes.get(page, per_page))[start:]

    def _run_actions(self) -> None:
        with self._lock:
            self._list_count += 1
            actions = self._actions.pop(self._list_count, [])
        for action in actions:
            action(self._store)
        if self.churn_new:
            self._store.add_new(self.churn_new)
        if self.churn_bump:
            self._store.bump(self.churn_bump)

    def _take_fault(self, page: int) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.page in (None, page):
                    if fault.times == 1:
                        del self._faults[index]
                    else:
                        self._faults[index] = replace(fault, times=fault.times - 1)
                    return fault
            if self.fault_rate > 0 and self._fault_rng.random() < self.fault_rate:
                kind = self._fault_rng.choice(self.fault_kinds)
                retry_after = "1" if kind == "429" else None
                delay = RANDOM_SLOW_DELAY if kind == "slow" else 0.0
                return Fault(kind, retry_after=retry_after, delay=delay)
        return None
