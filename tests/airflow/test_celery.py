"""CeleryExecutor for real: two workers, Redis as the broker, PostgreSQL for everything else.

The workers run on this machine but are set apart as two hosts would be: their own Celery
hostname, their own working directory, their own log-server port, and the hostname Airflow
records for their task instances. The DuckDB DAG is triggered through the REST API three times,
and every load reports to OpenLineage through its file transport.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from octopush_provider.sandbox import ConversationStore, SandboxServer
from tests.airflow.services import (
    STARTUP_TIMEOUT,
    Deployment,
    database_url,
    deploy,
    free_port,
    fresh_database,
    wait_for,
)
from tests.airflow.support import REPO, TASK_ID
from tests.helpers import expected_table

pytestmark = pytest.mark.e2e

DAG_ID = "octopush_conversations_to_duckdb"
# A Redis database of its own, and a queue per test run, so that nothing else on this Redis
# (another test run included) takes our tasks or gives us theirs.
REDIS_URL = "redis://127.0.0.1:6379/11"
WORKERS = ("worker-a", "worker-b")
OPENLINEAGE_FILE = "openlineage.jsonl"


def worker_ready(airflow: Deployment, name: str) -> bool:
    """Whether Celery says the worker is ready; fails at once if it exited."""
    if airflow.processes[name].poll() is not None:
        pytest.fail(f"Celery {name} exited\n{airflow.diagnose()}")
    return " ready." in (airflow.home / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def celery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("airflow-celery")
    queue = f"octopush-e2e-{uuid.uuid4().hex[:8]}"
    with (
        fresh_database("airflow_celery") as database,
        SandboxServer(ConversationStore.generate(300)) as sandbox,
        deploy(
            home,
            metadata_url=database_url(database),
            sandbox=sandbox,
            settings={
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database_url(database),
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
                "AIRFLOW__OPENLINEAGE__NAMESPACE": "octopush-e2e",
                "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                    {"type": "file", "log_file_path": str(home / OPENLINEAGE_FILE), "append": True}
                ),
            },
        ) as airflow,
    ):
        for name in WORKERS:
            workdir = home / name
            workdir.mkdir()
            airflow.start(
                name,
                *("celery", "worker", "--celery-hostname", f"{name}@%h", "--queues", queue),
                *("--concurrency", "1", "--without-gossip", "--without-mingle"),
                cwd=workdir,
                env={
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.airflow.worker_host.hostname",
                    "OCTOPUSH_TEST_HOSTNAME": name,
                    "PYTHONPATH": str(REPO),
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                },
            )
        for name in WORKERS:
            wait_for(
                f"Celery {name} to be ready",
                lambda name=name: worker_ready(airflow, name),
                timeout=STARTUP_TIMEOUT,
                diagnose=airflow.diagnose,
            )
        yield airflow


@dataclass
class Run:
    """A triggered run: its id, the task's hostname and summary, the pages the sandbox served."""

    run_id: str
    hostname: str
    summary: dict[str, Any]
    pages_requested: list[int]


@pytest.fixture(scope="module")
def runs(celery: Deployment) -> list[Run]:
    """Three runs: everything; after 5 new and 3 updated conversations; after no change.

    The worker that ran the first load is shut down after it, so the next runs must continue
    on the other worker from the cursor kept in the warehouse.
    """
    airflow, sandbox = celery, celery.sandbox
    airflow.unpause(DAG_ID)
    done: list[Run] = []
    for change in (None, "new and updated", "nothing"):
        if change == "new and updated":
            airflow.stop(done[0].hostname)
            sandbox.store.add_new(5)
            sandbox.store.bump(3)
        sandbox.clear_requests()
        run_id = airflow.trigger(DAG_ID)
        done.append(
            Run(
                run_id=run_id,
                hostname=airflow.task_instance(DAG_ID, run_id, TASK_ID)["hostname"],
                summary=airflow.return_value(DAG_ID, run_id, TASK_ID),
                pages_requested=[
                    record.page
                    for record in sandbox.requests
                    if urlsplit(record.path).path == urlsplit(sandbox.url).path
                ],
            )
        )
    return done


def test_runs_execute_on_both_workers_and_continue_on_the_other(runs: list[Run]) -> None:
    first, second, third = (run.hostname for run in runs)
    assert {first, second} == set(WORKERS)
    assert third == second


def test_each_run_after_the_first_is_incremental(runs: list[Run]) -> None:
    first, second, third = (run.summary for run in runs)
    assert (first["new"], first["conversations_loaded"]) == (300, 300)
    # Page 1 reaches the cursor; page 2 proves the order across it.
    assert (second["new"], second["updated"], second["pages"]) == (5, 3, 2)
    assert (third["new"], third["updated"], third["pages"]) == (0, 0, 2)
    assert [run.pages_requested for run in runs[1:]] == [[1, 2], [1, 2]]


def test_the_table_equals_the_sandbox_and_the_workers_kept_nothing(
    celery: Deployment, runs: list[Run]
) -> None:
    assert celery.loaded_table() == expected_table(celery.sandbox.store)
    # Each worker kept nothing in its working directory: the cursor lives in the warehouse.
    assert [list((celery.home / name).iterdir()) for name in WORKERS] == [[], []]


def test_each_load_emits_an_openlineage_complete_event_with_endpoint_and_table(
    celery: Deployment, runs: list[Run]
) -> None:
    events = [
        json.loads(line)
        for line in (celery.home / OPENLINEAGE_FILE).read_text().splitlines()
        if line.strip()
    ]
    complete = [
        event
        for event in events
        if event["eventType"] == "COMPLETE" and event["job"]["name"] == f"{DAG_ID}.{TASK_ID}"
    ]

    assert len(complete) == len(runs)
    endpoint = urlsplit(celery.sandbox.url)
    for event, run in zip(complete, runs, strict=True):
        assert [(source["namespace"], source["name"]) for source in event["inputs"]] == [
            (f"http://{endpoint.netloc}", endpoint.path),
            (f"http://{endpoint.netloc}", endpoint.path.replace("/list", "/messages/list")),
        ]
        tables = {table["name"]: table for table in event["outputs"]}
        assert set(tables) == {"octopush.conversations", "octopush.messages"}
        table = tables["octopush.conversations"]
        assert table["namespace"] == f"duckdb://{celery.duckdb_file}"
        columns = {field["name"] for field in table["facets"]["schema"]["fields"]}
        assert {"conversation_id", "last_message_at", "number_of_messages"} <= columns
        rows = table["outputFacets"]["outputStatistics"]["rowCount"]
        assert rows == run.summary["conversations_loaded"]
    assert celery.sandbox.api_key not in json.dumps(events)
