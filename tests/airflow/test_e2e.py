"""Airflow as users run it: scheduler, DAG processor and API server, LocalExecutor, Postgres.

One Airflow deployment serves the whole module: a metadata database of its own on this machine's
PostgreSQL, three Airflow processes on free loopback ports, and a sandbox standing in for
Octopush. Everything goes through Airflow's REST API, as the UI and users' scripts do.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
    assert "Loading Octopush conversations from connection 'octopush_default'" in log
    assert DEFAULT_API_KEY not in log


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
    assert fields["port"]["hidden"]
    assert fields["url_schema"]["hidden"]
    assert set(octopush["extra_fields"]) == set(CONNECTION_FIELDS)


@pytest.mark.parametrize(
    ("key", "ok", "start"),
    [
        (DEFAULT_API_KEY, True, "Octopush accepted"),
        (WRONG_KEY, False, "Wrong API login or API key"),
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
