"""Airflow fixtures: one throwaway Airflow home and metadata database for the whole session.

Airflow reads its configuration when it is first imported, so this module sets the environment
at import time, before any test module imports Airflow. Connections are given the way users give
them in containers: ``AIRFLOW_CONN_<ID>`` environment variables holding JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.support import DAGS_FOLDER, POSTGRES

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="octopush-airflow-"))

if "airflow" in sys.modules:
    raise RuntimeError(
        "airflow was imported before tests/airflow/conftest.py could point it at a test home"
    )

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
    }
)


@pytest.fixture(scope="session", autouse=True)
def airflow_home() -> Iterator[Path]:
    """The session's Airflow home, removed at the end."""
    yield AIRFLOW_HOME
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> None:
    """The metadata database, migrated once per session (what ``airflow db migrate`` does)."""
    from airflow.utils.db import upgradedb  # noqa: PLC0415

    upgradedb()


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set an Airflow connection for this test: ``set_connection("octopush_default", ...)``."""

    def set_conn(conn_id: str, **fields: Any) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))

    return set_conn


@pytest.fixture
def postgres_connection(set_connection: Callable[..., None]) -> str:
    """The ``octopush_postgres`` connection, to this machine's ``test`` database; its id."""
    set_connection(
        "octopush_postgres",
        conn_type="postgres",
        host=POSTGRES["host"],
        port=POSTGRES["port"],
        login=POSTGRES["user"],
        schema=POSTGRES["dbname"],
    )
    return "octopush_postgres"


@pytest.fixture
def postgres_dataset() -> Iterator[str]:
    """A schema name of its own in the ``test`` database, dropped after the test."""
    import psycopg2  # noqa: PLC0415

    name = f"octopush_airflow_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg2.connect(**POSTGRES) as conn, conn.cursor() as cursor:
        for schema in (name, f"{name}_staging"):
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    conn.close()


@pytest.fixture
def point_octopush_at(set_connection: Callable[..., None]) -> Callable[..., None]:
    """Make ``octopush_default`` the sandbox's account: ``point_octopush_at(sandbox, **extra)``."""
    from octopush_provider.sandbox import DEFAULT_API_LOGIN  # noqa: PLC0415

    def point(sandbox: Any, **extra: Any) -> None:
        set_connection(
            "octopush_default",
            conn_type="octopush",
            login=DEFAULT_API_LOGIN,
            password=sandbox.api_key,
            host=sandbox.base_url,
            extra=extra,
        )

    return point


@pytest.fixture
def duckdb_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The DuckDB file the example DuckDB DAG loads into, through dlt's environment variable."""
    path = tmp_path / "conversations.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(path))
    return path
