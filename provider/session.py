"""The keep-alive session a client sends every request on, tuned for many small reads.

Built on first use (a client's constructor does no I/O) with a pool for every concurrent read,
the proxies resolved once, and each URL's request prepared once: what ``requests`` would redo on
every request costs half the CPU of a request to a nearby server. Bounds on each exchange
(deadlines, the size cap) are :mod:`octopush_provider.transport`'s.
"""

from __future__ import annotations

import os
from functools import cached_property
from urllib.parse import urlencode, urlsplit

import requests
from requests.auth import AuthBase
from requests.utils import get_environ_proxies

from octopush_provider.settings import USER_AGENT
from octopush_provider.transport import WatchedAdapter

__all__ = ["Sender", "Timeout"]

Timeout = float | tuple[float, float]
"""``requests``' timeout: seconds for each socket read, or (connect, read)."""


class Sender:
    """Sends GETs with ``auth`` on one lazily built session of ``pool_size`` connections.

    ``proxied_url`` is the URL whose proxies (from the environment) serve every request.
    """

    def __init__(self, *, auth: AuthBase, proxied_url: str, pool_size: int) -> None:
        self._auth = auth
        self._proxied_url = proxied_url
        self._pool_size = pool_size
        self._templates: dict[str, tuple[requests.PreparedRequest, str]] = {}

    @cached_property
    def session(self) -> requests.Session:
        """The keep-alive session, built on first use with a pool for every concurrent read."""
        session = requests.Session()
        # requests re-reads every environment variable on each request to find proxies, which
        # costs about a millisecond a page on a busy host: resolve them once, here, instead.
        session.proxies = get_environ_proxies(self._proxied_url)
        session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        session.trust_env = False
        session.auth = self._auth
        session.headers["User-Agent"] = USER_AGENT
        session.headers["Accept"] = "application/json"
        adapter = WatchedAdapter(pool_connections=1, pool_maxsize=self._pool_size)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def request(self, url: str, params: dict[str, str]) -> requests.PreparedRequest:
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

    def send(self, url: str, params: dict[str, str], *, timeout: Timeout) -> requests.Response:
        """Send the GET of ``url`` with ``params``; the body is left to be streamed."""
        request = self.request(url, params)
        session = self.session
        return session.get_adapter(url).send(
            request,
            stream=True,
            timeout=timeout,
            verify=session.verify,  # type: ignore[arg-type]  # always set above
            proxies=session.proxies,
        )

    def close(self) -> None:
        """Close the session's connections, if any were opened."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]
            self._templates.clear()
