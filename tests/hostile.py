"""A small real HTTP server on a loopback socket that answers as a test tells it to, however badly.

Tests of the client against answers no Octopush would send on purpose build one through the
``hostile`` fixture (``tests/conftest.py``) with a behaviour: a function given the request's
handler, which writes whatever answer the test needs.
"""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def do_GET(self) -> None:
        self.server.requests += 1
        try:
            self.server.behaviour(self)
        except OSError:  # the client hung up: that is what it should do
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, behaviour: Callable[[Handler], None]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.behaviour = behaviour
        self.requests = 0
        self.dripped: list[int] = []  # bytes each drip sent before the client hung up
        self.times: list[float] = []  # when requests came, for behaviours that note it

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/public"
