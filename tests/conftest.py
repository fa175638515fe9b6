"""Shared fixtures: a real sandbox server per test, stopped at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from provider.client import OctopushClient
from provider.retry import RetryPolicy
from provider.sandbox import DEFAULT_API_KEY, DEFAULT_API_LOGIN, ConversationStore, SandboxServer

_STORE_KWARGS = ("seed", "offsets", "shuffled")


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Factory: ``make_sandbox(conversations=250, seed=..., offsets=..., **server_kwargs)``."""
    started: list[SandboxServer] = []

    def make(conversations: int = 250, **kwargs: Any) -> SandboxServer:
        store_kwargs = {name: kwargs.pop(name) for name in _STORE_KWARGS if name in kwargs}
        store = ConversationStore.generate(conversations, **store_kwargs)
        sandbox = SandboxServer(store, **kwargs).start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    """A running sandbox with 250 conversations, newest-first, Paris offsets."""
    return make_sandbox()


FAST_RETRY = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05, budget=5.0)


@pytest.fixture
def make_client() -> Callable[..., OctopushClient]:
    """Factory for a client of a sandbox, with quick retries; options override the defaults."""

    def make(sandbox: SandboxServer, **options: Any) -> OctopushClient:
        settings: dict[str, Any] = {
            "api_login": DEFAULT_API_LOGIN,
            "api_key": DEFAULT_API_KEY,
            "base_url": sandbox.base_url,
            "retry": FAST_RETRY,
        }
        return OctopushClient(**(settings | options))

    return make

