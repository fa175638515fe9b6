"""Shared fixtures: a real sandbox server per test, stopped at teardown."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dlt
import psycopg2
import pytest

from octopush_provider.client import OctopushClient
from octopush_provider.retry import RetryPolicy
from octopush_provider.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_LOGIN,
    ConversationStore,
    SandboxServer,
)
from tests.bigquery_emulator import LOAD_ENVIRONMENT, BigQueryEmulator, running_emulator
from tests.helpers import POSTGRES_URL
from tests.hostile import Handler, HostileServer

# Outside an Airflow task dlt need not probe Airflow for secrets; it is slow and writes files.
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

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


@pytest.fixture
def make_pipeline(tmp_path: Path) -> Callable[..., dlt.Pipeline]:
    """Factory for a dlt pipeline with its working dir under ``tmp_path``; DuckDB by default."""

    def make(name: str = "octopush_test", destination: Any = None, **options: Any) -> dlt.Pipeline:
        if destination is None:
            destination = dlt.destinations.duckdb(str(tmp_path / f"{name}.duckdb"))
        return dlt.pipeline(
            pipeline_name=name,
            destination=destination,
            dataset_name=options.pop("dataset_name", "octopush"),
            pipelines_dir=str(tmp_path / "pipelines"),
            **options,
        )

    return make


@pytest.fixture
def postgres_dataset() -> Iterator[str]:
    """A schema of its own in the test database, dropped afterwards."""
    name = f"octopush_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg2.connect(POSTGRES_URL) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        cursor.execute(f"DROP SCHEMA IF EXISTS {name}_staging CASCADE")


@pytest.fixture
def hostile() -> Iterator[Callable[[Callable[[Handler], None]], HostileServer]]:
    """Factory: ``hostile(behaviour)`` starts a :class:`HostileServer`, stopped at teardown."""
    servers: list[HostileServer] = []

    def start(behaviour: Callable[[Handler], None]) -> HostileServer:
        server = HostileServer(behaviour)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def bigquery_emulator() -> Iterator[BigQueryEmulator]:
    """One local BigQuery for the session (see tests/bigquery_emulator.py); tests share it."""
    with running_emulator() as emulator:
        yield emulator


def _point_google_at(emulator: BigQueryEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", emulator.url)
    for name, value in LOAD_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def emulated_bigquery(
    bigquery_emulator: BigQueryEmulator, monkeypatch: pytest.MonkeyPatch
) -> BigQueryEmulator:
    """The session's emulator, with this test's environment pointing Google's client at it."""
    _point_google_at(bigquery_emulator, monkeypatch)
    return bigquery_emulator


@pytest.fixture
def fresh_bigquery(monkeypatch: pytest.MonkeyPatch) -> Iterator[BigQueryEmulator]:
    """An emulator of this test's own, for the loads that leave it unusable to the next test.

    A dlt transaction (a BigQuery session: ``BEGIN TRANSACTION``, then ``COMMIT TRANSACTION;
    CALL BQ.ABORT_SESSION()``) leaves bqemulator 1.4.0's DuckDB connection in an aborted
    transaction: every later request fails. Deletions run in one such transaction.
    """
    with running_emulator() as emulator:
        _point_google_at(emulator, monkeypatch)
        yield emulator


@pytest.fixture
def bigquery_dataset() -> str:
    """A dataset name of its own in the emulator's project (the emulator dies with the session)."""
    return f"octopush_{uuid.uuid4().hex[:8]}"
