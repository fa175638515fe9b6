"""Airflow as users run it: scheduler, DAG processor and API server, LocalExecutor, Postgres.

One Airflow deployment serves the whole module: a metadata database of its own on this machine's
PostgreSQL, three Airflow processes on free loopback ports, and a sandbox standing in for
Octopush. Everything goes through Airflow's REST API, as the UI and users' scripts do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from octopush_provider import CONNECTION_FIELDS
from octopush_provider.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_LOGIN,
    ConversationStore,
    SandboxServer,
)
from tests.airflow.services import Deployment, database_url, deploy, fresh_database
from tests.airflow.support import TASK_ID
from tests.helpers import expected_table

pytestmark = pytest.mark.e2e

DAG_ID = "octopush_conversations_to_duckdb"
WRONG_KEY = "not-the-key-0123456789"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with (
        fresh_database("airflow_e2e") as database,
        SandboxServer(ConversationStore.generate(300)) as sandbox,
        deploy(
            tmp_path_factory.mktemp("airflow-e2e"),
            metadata_url=database_url(database),
            sandbox=sandbox,
            settings={"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"},
        ) as airflow,
    ):
        yield airflow


def test_scheduler_runs_the_duckdb_dag_triggered_through_the_rest_api(
    deployment: Deployment,
) -> None:
    airflow = deployment
    airflow.unpause(DAG_ID)

    run_id = airflow.trigger(DAG_ID)

    assert airflow.loaded_table() == expected_table(airflow.sandbox.store)
    summary = airflow.return_value(DAG_ID, run_id, TASK_ID)
    assert summary["conversations_loaded"] == 300
    assert DEFAULT_API_KEY not in str(summary)
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
