"""Helpers for the Airflow tests: run the example DAGs for real and read back what they left.

Nothing here imports Airflow at module level: ``conftest.py`` must configure it first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    import dlt
    from airflow.models.dagrun import DagRun

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
AIRFLOW_BIN = Path(sys.executable).with_name("airflow")
POSTGRES: dict[str, Any] = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
TASK_ID = "load_conversations"
# Trust authentication: any password will do, and dlt wants one.
POSTGRES_URL = f"postgresql://{POSTGRES['user']}:any@{POSTGRES['host']}:{POSTGRES['port']}/{POSTGRES['dbname']}"


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``airflow <args>`` in the test environment; the caller collects its output."""
    return subprocess.Popen(
        [str(AIRFLOW_BIN), *args],
        env=env if env is not None else dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_dag(
    dag_id: str,
    conf: dict[str, Any] | None = None,
    *,
    run_after: datetime | None = None,
    **task_settings: Any,
) -> DagRun:
    """Parse ``dags/`` as the DAG processor would and run one DAG with ``dag.test()``.

    ``conf`` is the run's configuration, as given to "Trigger DAG" in the UI; ``run_after`` the
    moment the run is due (now by default). Retries are turned off: the example DAGs retry after
    minutes, and a test should fail now. ``task_settings`` (e.g. ``execution_timeout``) are set
    on every task.
    """
    from airflow.dag_processing.dagbag import DagBag  # noqa: PLC0415

    bag = DagBag(dag_folder=DAGS_FOLDER)
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[dag_id]
    for task in dag.tasks:
        task.retries = 0
        for name, value in task_settings.items():
            setattr(task, name, value)
    dag_run: DagRun = dag.test(run_after=run_after, run_conf=conf)
    return dag_run


def return_value(dag_run: DagRun) -> Any:
    """What the load task pushed to XCom, exactly as stored in the metadata database."""
    from airflow.models.xcom import XComModel  # noqa: PLC0415
    from airflow.utils.session import create_session  # noqa: PLC0415

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=TASK_ID, key="return_value"
            )
        ).one()
        return row.value


def asset_events(dag_run: DagRun) -> list[tuple[str, dict[str, Any]]]:
    """The (asset URI, extra) of every asset event the run emitted."""
    from airflow.models.asset import AssetEvent  # noqa: PLC0415
    from airflow.utils.session import create_session  # noqa: PLC0415
    from sqlalchemy import select  # noqa: PLC0415

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).where(
                AssetEvent.source_dag_id == dag_run.dag_id,
                AssetEvent.source_run_id == dag_run.run_id,
            )
        ).all()
        return [(event.uri, event.extra) for event in events]


def restored_pipeline(destination: Any, *, dataset_name: str, workdir: Path) -> dlt.Pipeline:
    """The operator's dlt pipeline as a new worker sees it: state restored from the destination."""
    import dlt  # noqa: PLC0415

    pipeline = dlt.pipeline(
        pipeline_name="octopush_conversations",
        destination=destination,
        dataset_name=dataset_name,
        pipelines_dir=str(workdir),
    )
    pipeline.sync_destination()
    return pipeline
