"""Bounds on one HTTP exchange: a deadline for the whole request, a cap on the decoded body.

``requests``' read timeout bounds each socket read, not the request: a server that sends a byte
every few seconds, in its headers or its body, keeps a request alive forever. So every request
runs under a :func:`deadline`: one watchdog thread shuts down the socket of a request that
outlives it, which wakes the blocked read at once (``shutdown``, unlike ``close``, does that on
Linux). The adapter's connections hand their socket to the watch of the thread that uses them,
when they wait for the answer's headers.

And bodies are read as a stream, counting decoded bytes (urllib3 inflates a gzip body by the
chunk, never all at once), so that a huge answer or a gzip bomb fails early instead of filling
the memory.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager
from urllib3.poolmanager import pool_classes_by_scheme as _PLAIN_POOLS

__all__ = [
    "BodyCutShort",
    "BodyTooLarge",
    "Watch",
    "WatchedAdapter",
    "deadline",
    "metered",
    "paused",
    "read_body",
]

CHUNK_BYTES = 64 * 1024


class Watch:
    """The deadline of one request; ``expired`` tells whether the watchdog cut it off."""

    __slots__ = ("at", "connection", "done", "expired", "paused")

    def __init__(self, at: float) -> None:
        self.at = at
        self.connection: Any = None
        self.done = False
        self.expired = False
        self.paused = False

    def __lt__(self, other: Watch) -> bool:
        return self.at < other.at


class _Watchdog:
    """One daemon thread for the whole process, sleeping until the earliest deadline."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf
        self._local = threading.local()

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[Watch]:
        watch = Watch(time.monotonic() + seconds)
        with self._condition:
            while self._heap and self._heap[0][2].done:  # finished watches, oldest first
                heapq.heappop(self._heap)
            heapq.heappush(self._heap, (watch.at, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="octopush-deadline", daemon=True
                )
                self._thread.start()
            if watch.at < self._wake_at:  # wake the watchdog only when it would sleep past it
                self._condition.notify()
        self._local.watch = watch
        try:
            yield watch
        finally:
            self._local.watch = None
            with self._condition:
                watch.done = True

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the clock of this thread's request while it waits on us, not on the server."""
        watch: Watch | None = getattr(self._local, "watch", None)
        if watch is None or watch.paused:
            yield
            return
        with self._condition:
            left, watch.paused = watch.at - time.monotonic(), True
        try:
            yield
        finally:
            with self._condition:
                watch.paused = False
                if not watch.expired:
                    watch.at = time.monotonic() + left
                    heapq.heappush(self._heap, (watch.at, next(self._order), watch))
                    if watch.at < self._wake_at:
                        self._condition.notify()

    def attach(self, connection: HTTPConnection) -> None:
        """Put ``connection`` under the watch of the calling thread's request, if any."""
        watch: Watch | None = getattr(self._local, "watch", None)
        if watch is None:
            return
        with self._condition:
            watch.connection = connection
            connection._octopush_watch = watch  # type: ignore[attr-defined]
            if watch.expired:
                _shut(connection)

    def _run(self) -> None:
        with self._condition:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake_at = math.inf
                    self._condition.wait()  # idle until the next request starts
                    continue
                self._wake_at = self._heap[0][0]
                remaining = self._wake_at - time.monotonic()
                if remaining > 0:
                    self._condition.wait(remaining)
                    continue
                watch = heapq.heappop(self._heap)[2]
                if watch.paused or watch.at > time.monotonic():
                    continue  # its clock stopped (and is pushed again when it restarts) or moved
                watch.expired = True
                connection = watch.connection
                # The connection may have gone back to the pool and on to another request.
                if connection is not None and getattr(connection, "_octopush_watch", None) is watch:
                    _shut(connection)


def _shut(connection: HTTPConnection) -> None:
    sock = connection.sock
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            # The plain socket's shutdown, also for TLS: it leaves the SSL object alone.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()


def deadline(seconds: float) -> contextlib.AbstractContextManager[Watch]:
    """Cut off a request of this thread made through a :class:`WatchedAdapter` after ``seconds``."""
    return _WATCHDOG.deadline(seconds)


def paused() -> contextlib.AbstractContextManager[None]:
    """Stop the clock of this thread's :func:`deadline` for as long as the block runs."""
    return _WATCHDOG.paused()


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self) -> Any:
        _WATCHDOG.attach(self)
        return super().getresponse()


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self) -> Any:
        _WATCHDOG.attach(self)
        return super().getresponse()


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def _watched(manager: PoolManager) -> PoolManager:
    # Only plain pools are swapped: a SOCKS proxy's pools connect through the proxy, and
    # replacing them would bypass it (its requests keep the per-read timeout only).
    if manager.pool_classes_by_scheme is _PLAIN_POOLS:
        manager.pool_classes_by_scheme = _POOLS
    return manager


class WatchedAdapter(HTTPAdapter):
    """A requests adapter whose connections obey :func:`deadline`, through http(s) proxies too."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watched(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _watched(super().proxy_manager_for(proxy, **proxy_kwargs))


def _free(size: int) -> None:
    """No meter: any size is fine."""


class BodyCutShort(Exception):
    """The body stopped before its end: the connection closed, or went quiet past the timeout."""

    def __init__(self, *, received: int, announced: int | None, quiet: bool) -> None:
        # Bytes still in the HTTP library's buffer when the read failed are not counted.
        if announced:
            got = f"{received} of" if received else "fewer than"
            got += f" the {announced} bytes announced by Content-Length"
        else:
            got = f"{received} bytes" if received else "part of it"
        how = "then nothing more came within the read timeout" if quiet else "then it was closed"
        super().__init__(f"the answer was cut short: {got} arrived, {how}")
        self.received = received
        self.announced = announced


class BodyTooLarge(Exception):
    """The decoded body grew past the limit it was read with."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


_METER = threading.local()


@contextlib.contextmanager
def metered(charge: Callable[[int], None]) -> Iterator[None]:
    """Have :func:`read_body` tell ``charge`` the bytes it holds, in this thread, as it reads.

    ``charge`` may block until the memory is there: a body is then read no faster than the
    bodies read before it are let go.
    """
    _METER.charge = charge
    try:
        yield
    finally:
        _METER.charge = None


def read_body(response: requests.Response, *, limit: int, truncate: bool = False) -> bytes:
    """The decoded body of a streamed response, at most ``limit`` bytes.

    Past the limit, raise :class:`BodyTooLarge`, or with ``truncate`` return the first ``limit``
    bytes (enough for an excerpt of an error page). Either way the rest is never read.
    """
    length = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity").strip().lower()
    if not truncate and encoded == "identity" and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(limit)
    charge: Callable[[int], None] = getattr(_METER, "charge", None) or _free
    chunks: list[bytes] = []
    size = 0
    charge(size)  # a new attempt holds nothing yet
    try:
        for chunk in response.iter_content(CHUNK_BYTES):
            size += len(chunk)
            charge(min(size, limit))
            if size > limit:
                if not truncate:
                    raise BodyTooLarge(limit)
                chunks.append(chunk[: limit - size + len(chunk)])
                break
            chunks.append(chunk)
    except requests.RequestException as error:
        raw = getattr(response.raw, "tell", lambda: size)()  # bytes as sent, before inflating
        announced = int(length) if encoded == "identity" and length.isdigit() else None
        quiet = isinstance(error, requests.Timeout) or "timed out" in str(error)
        raise BodyCutShort(received=raw, announced=announced, quiet=quiet) from error
    return b"".join(chunks)
