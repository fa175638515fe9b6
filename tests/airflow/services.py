"""A real Airflow deployment for the end-to-end tests: processes, REST API, metadata database.

The LocalExecutor and CeleryExecutor tests start the same core (API server, scheduler, DAG
processor on a PostgreSQL metadata database of their own) with different executor settings;
the Celery test adds its workers with :meth:`Deployment.start`. Everything goes through
Airflow's REST API, as the UI and users' scripts do.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest
import requests

from octopush_provider.sandbox import DEFAULT_API_LOGIN, SandboxServer
from tests.airflow.support import AIRFLOW_BIN, DAGS_FOLDER, POSTGRES

STARTUP_TIMEOUT = 90.0
RUN_TIMEOUT = 150.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def wait_for(what: str, check: Any, *, timeout: float, diagnose: Any) -> Any:
    """Poll ``check()`` until it returns something truthy; fail with the processes' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{diagnose()}")


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database on this machine; yields its name, drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(**POSTGRES)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def database_url(name: str, *, driver: str = "postgresql+psycopg2") -> str:
    return f"{driver}://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{name}"


@dataclass
class Deployment:
    """The running Airflow: its REST API, its environment and its processes."""

    home: Path
    env: dict[str, str]
    api_url: str
    sandbox: SandboxServer
    duckdb_file: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    token: str = ""

    def start(
        self, name: str, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        """Start ``airflow <args>`` in its own process group, logging to ``<home>/<name>.log``.

        ``env`` adds to the deployment's environment, for this process only.
        """
        with (self.home / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [str(AIRFLOW_BIN), *args],
                env=self.env | (env or {}),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, *names: str) -> None:
        """Terminate the named processes (every one if none is named), their task runners too.

        A SIGTERM first, which lets a Celery worker finish its task; SIGKILL after a grace period.
        """
        chosen = [self.processes[name] for name in names or self.processes]
        for process in chosen:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in chosen:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # Task runners live in the process groups too; make sure none outlives its parent.
        for process in chosen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def diagnose(self) -> str:
        """The tail of every process's log, for failure messages."""
        tails = []
        for name in self.processes:
            text = (self.home / f"{name}.log").read_text(errors="replace")
            tails.append(f"--- {name} (exit {self.processes[name].poll()}) ---\n{text[-3000:]}")
        return "\n".join(tails)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return requests.request(method, self.api_url + path, headers=headers, timeout=60, **kwargs)

    def answers(self, path: str) -> bool:
        try:
            return self.api("GET", path).status_code == 200
        except requests.ConnectionError:
            return False

    def unpause(self, dag_id: str) -> None:
        """Wait for the DAG processor to register ``dag_id``, then unpause it."""
        wait_for(
            f"the DAG processor to register {dag_id}",
            lambda: self.answers(f"/api/v2/dags/{dag_id}"),
            timeout=STARTUP_TIMEOUT,
            diagnose=self.diagnose,
        )
        unpaused = self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        assert unpaused.status_code == 200, unpaused.text

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run through the REST API and wait for it to end; returns its run id."""
        triggered = self.api(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}
        )
        assert triggered.status_code == 200, triggered.text
        run_id: str = triggered.json()["dag_run_id"]
        state = wait_for(
            f"run {run_id} to finish",
            lambda: self.run_state(dag_id, run_id),
            timeout=RUN_TIMEOUT,
            diagnose=self.diagnose,
        )
        assert state == "success", self.diagnose()
        return run_id

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """The task instance as the REST API shows it (state, hostname, ...)."""
        response = self.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        )
        assert response.status_code == 200, response.text
        instance: dict[str, Any] = response.json()
        return instance

    def return_value(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """What the task pushed to XCom, through the REST API."""
        response = self.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/"
            "xcomEntries/return_value",
        )
        assert response.status_code == 200, response.text
        return response.json()["value"]

    def loaded_table(self) -> dict[str, tuple[datetime, int]]:
        """The DuckDB DAG's table, keyed like :func:`tests.helpers.expected_table`."""
        with duckdb.connect(str(self.duckdb_file), read_only=True) as warehouse:
            rows = warehouse.execute(
                "SELECT conversation_id, last_message_at, number_of_messages "
                "FROM octopush.conversations"
            ).fetchall()
        loaded = {cid: (moment.astimezone(UTC), count) for cid, moment, count in rows}
        assert len(loaded) == len(rows), "a conversation was loaded twice"
        return loaded

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """``success`` or ``failed`` once the run has ended, else None (also while a busy API
        server is slow to answer)."""
        try:
            response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        except requests.Timeout:
            return None
        state: str = response.json()["state"]
        return state if state in ("success", "failed") else None


@contextlib.contextmanager
def deploy(
    home: Path, *, metadata_url: str, sandbox: SandboxServer, settings: dict[str, str]
) -> Iterator[Deployment]:
    """Migrate the metadata database and start the API server, scheduler and DAG processor.

    ``settings`` (the executor's, mostly) add to or override the common environment. The
    sandbox is the ``octopush_default`` connection; the DuckDB DAG loads into ``home``.
    """
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    duckdb_file = home / "warehouse" / "conversations.duckdb"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW", "DESTINATION__", "OCTOPUSH_", "PROVIDERS__"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            # The log of a running task is served by the scheduler's log server: on a port of
            # its own, not 8793, which another deployment on this machine may hold.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            # Only the runs we trigger: no scheduled run competing for the DuckDB file.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW_CONN_OCTOPUSH_DEFAULT": json.dumps(
                {
                    "conn_type": "octopush",
                    "login": DEFAULT_API_LOGIN,
                    "password": sandbox.api_key,
                    "host": sandbox.base_url,
                }
            ),
            "DESTINATION__DUCKDB__CREDENTIALS": str(duckdb_file),
        }
    )
    env.update(settings)
    airflow = Deployment(
        home=home, env=env, api_url=api_url, sandbox=sandbox, duckdb_file=duckdb_file
    )
    try:
        migrate = subprocess.run(
            [str(AIRFLOW_BIN), "db", "migrate"],
            env=env,
            capture_output=True,
            timeout=180,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr.decode(errors="replace")[-3000:]
        airflow.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
        airflow.start("scheduler", "scheduler")
        airflow.start("dag-processor", "dag-processor")
        wait_for(
            "the API server",
            lambda: airflow.answers("/api/v2/monitor/health"),
            timeout=STARTUP_TIMEOUT,
            diagnose=airflow.diagnose,
        )
        token = airflow.api("GET", "/auth/token")
        assert token.status_code == 201, token.text
        airflow.token = token.json()["access_token"]
        yield airflow
    finally:
        airflow.stop()
