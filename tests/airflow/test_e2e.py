"""Airflow as users run it: scheduler, DAG processor and API server, LocalExecutor, Postgres.

One Airflow deployment serves the whole module: a metadata database of its own on this machine's
PostgreSQL, three Airflow processes on free loopback ports, and a sandbox standing in for
Octopush. Everything goes through Airflow's REST API, as the UI and users' scripts do.
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
from datetime import UTC
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest
import requests

from octopush_provider import CONNECTION_FIELDS
from octopush_provider.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_LOGIN,
    ConversationStore,
    SandboxServer,
)
from tests.airflow.support import AIRFLOW_BIN, DAGS_FOLDER, POSTGRES, TASK_ID
from tests.helpers import expected_table

pytestmark = pytest.mark.e2e

DAG_ID = "octopush_conversations_to_duckdb"
STARTUP_TIMEOUT = 90.0
RUN_TIMEOUT = 150.0
STOP_TIMEOUT = 20.0
WRONG_KEY = "not-the-key-0123456789"


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

    def start(self, name: str, *args: str) -> None:
        """Start ``airflow <args>`` in its own process group, logging to ``<home>/<name>.log``."""
        with (self.home / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [str(AIRFLOW_BIN), *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """Terminate every process group, then kill what is left after a grace period."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # Task runners live in the process groups too; make sure none outlives its parent.
        for process in self.processes.values():
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


@pytest.fixture(scope="module")
def metadata_database() -> Iterator[str]:
    """A PostgreSQL database for Airflow's metadata, dropped afterwards."""
    name = f"airflow_e2e_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(**POSTGRES)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def deployment(
    metadata_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("airflow-e2e")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    sandbox = SandboxServer(ConversationStore.generate(300)).start()
    duckdb_file = home / "warehouse" / "conversations.duckdb"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW", "DESTINATION__", "OCTOPUSH_", "PROVIDERS__"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_database,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            # Only the run we trigger: no scheduled run competing for the DuckDB file.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW_CONN_OCTOPUSH_DEFAULT": json.dumps(
                {
                    "conn_type": "octopush",
                    "login": DEFAULT_API_LOGIN,
                    "password": DEFAULT_API_KEY,
                    "host": sandbox.base_url,
                }
            ),
            "DESTINATION__DUCKDB__CREDENTIALS": str(duckdb_file),
        }
    )
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
        sandbox.stop()


def run_state(airflow: Deployment, run_id: str) -> str | None:
    """The run's final state, or None while it runs (or while a busy API server is slow)."""
    try:
        response = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
    except requests.Timeout:
        return None
    state: str = response.json()["state"]
    return state if state in ("success", "failed") else None


def test_scheduler_runs_the_duckdb_dag_triggered_through_the_rest_api(
    deployment: Deployment,
) -> None:
    airflow = deployment
    wait_for(
        "the DAG processor to register the DAG",
        lambda: airflow.answers(f"/api/v2/dags/{DAG_ID}"),
        timeout=STARTUP_TIMEOUT,
        diagnose=airflow.diagnose,
    )
    unpaused = airflow.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    assert unpaused.status_code == 200, unpaused.text

    triggered = airflow.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
    assert triggered.status_code == 200, triggered.text
    run_id = triggered.json()["dag_run_id"]
    state = wait_for(
        "the triggered run to finish",
        lambda: run_state(airflow, run_id),
        timeout=RUN_TIMEOUT,
        diagnose=airflow.diagnose,
    )

    assert state == "success", airflow.diagnose()
    with duckdb.connect(str(airflow.duckdb_file), read_only=True) as warehouse:
        rows = warehouse.execute(
            "SELECT conversation_id, last_message_at, number_of_messages "
            "FROM octopush.conversations"
        ).fetchall()
    loaded = {cid: (moment.astimezone(UTC), count) for cid, moment, count in rows}
    assert len(loaded) == len(rows)
    assert loaded == expected_table(airflow.sandbox.store)
    xcom = airflow.api(
        "GET",
        f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/xcomEntries/return_value",
    )
    assert xcom.status_code == 200, xcom.text
    assert xcom.json()["value"]["conversations_loaded"] == 300
    assert DEFAULT_API_KEY not in xcom.text
    (task_log,) = airflow.home.glob(f"logs/dag_id={DAG_ID}/run_id=*/task_id={TASK_ID}/*.log")
    log = task_log.read_text()
    assert "Loading Octopush conversations and messages from connection 'octopush_default'" in log
    assert DEFAULT_API_KEY not in log
    # dlt reads its `dlt_secrets_toml` variable through Airflow 2 APIs; the log stays free of that.
    assert "deprecated" not in log, [line for line in log.splitlines() if "deprecated" in line]


def test_connection_form_relabels_fields_and_offers_the_extras(deployment: Deployment) -> None:
    response = deployment.api("GET", "/ui/connections/hook_meta")
    assert response.status_code == 200, response.text
    (octopush,) = [hook for hook in response.json() if hook["connection_type"] == "octopush"]

    fields = octopush["standard_fields"]
    assert octopush["hook_name"] == "Octopush"
    assert (fields["login"]["title"], fields["password"]["title"], fields["host"]["title"]) == (
        "API login",
        "API key",
        "Base URL",
    )
    assert not fields["port"]["hidden"]
    assert fields["port"]["title"] == "Port (enter 0 for the Test button)"
    assert fields["url_schema"]["hidden"]
    assert set(octopush["extra_fields"]) == set(CONNECTION_FIELDS)
    # The form shows the hash secret as a password input.
    assert octopush["extra_fields"]["hash_secret"]["schema"]["format"] == "password"


@pytest.mark.parametrize(
    ("key", "ok", "start"),
    [
        (DEFAULT_API_KEY, True, "Octopush accepted the API login and API key at http"),
        (WRONG_KEY, False, "Wrong API login or API key: Octopush refused API login"),
    ],
)
def test_connection_test_button_reports_what_octopush_said(
    deployment: Deployment, key: str, ok: bool, start: str
) -> None:
    response = deployment.api(
        "POST",
        "/api/v2/connections/test",
        json={
            "connection_id": "octopush_form",
            "conn_type": "octopush",
            "login": DEFAULT_API_LOGIN,
            "password": key,
            "host": deployment.sandbox.base_url,
        },
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] is ok
    assert response.json()["message"].startswith(start)
    assert key not in response.text


def press_test_in_the_list(deployment: Deployment, connection_id: str) -> requests.Response:
    """What the Test button of the connection list in Airflow 3.3.2's UI posts: the stored
    connection as the list shows it (password masked), with ``Number(port)``, so 0 for none."""
    shown = deployment.api("GET", f"/api/v2/connections/{connection_id}").json()
    body = {
        "connection_id": connection_id,
        "conn_type": shown["conn_type"],
        "description": shown["description"] or "",
        "extra": shown["extra"] or "{}",
        "host": shown["host"] or "",
        "login": shown["login"] or "",
        "password": shown["password"] or "",
        "port": shown["port"] or 0,
        "schema": shown["schema"] or "",
    }
    return deployment.api("POST", "/api/v2/connections/test", json=body)


def save_from_the_form(deployment: Deployment, connection_id: str, **fields: Any) -> None:
    created = deployment.api(
        "POST",
        "/api/v2/connections",
        json={
            "connection_id": connection_id,
            "conn_type": "octopush",
            "login": DEFAULT_API_LOGIN,
            "password": DEFAULT_API_KEY,
            "host": deployment.sandbox.base_url,
            **fields,
        },
    )
    assert created.status_code == 201, created.text


def test_the_list_test_button_works_for_a_connection_saved_with_port_0(
    deployment: Deployment,
) -> None:
    save_from_the_form(deployment, "octopush_port_0", port=0)

    response = press_test_in_the_list(deployment, "octopush_port_0")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": True,
        "message": f"Octopush accepted the API login and API key at {deployment.sandbox.base_url}.",
    }


def test_airflow_still_refuses_the_list_test_button_for_a_connection_without_port(
    deployment: Deployment,
) -> None:
    save_from_the_form(deployment, "octopush_no_port")

    response = press_test_in_the_list(deployment, "octopush_no_port")

    # When this fails, Airflow has fixed apache/airflow#73298 in the versions we support: drop
    # the Port field's "enter 0" label, hide Port again and update the README's Airflow guide.
    assert response.status_code == 400, response.text
    assert "host or port to test differs from the stored connection" in response.text
