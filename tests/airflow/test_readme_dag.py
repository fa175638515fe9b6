"""The README's DAG, copied as it is (its DuckDB file moved into the test's folder), parses with
Airflow's DAG processor and loads the whole sandbox account in one run of ``dag.test()``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from octopush_provider.sandbox import SandboxServer
from tests.helpers import expected_messages, expected_table, readme_code

pytestmark = pytest.mark.usefixtures("airflow_db")

README_FILE = "/data/warehouse.duckdb"


def test_the_readmes_dag_loads_the_whole_account(
    sandbox: SandboxServer,
    point_octopush_at: Callable[[SandboxServer], None],
    tmp_path: Path,
) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager  # noqa: PLC0415
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db  # noqa: PLC0415

    code = readme_code("## Load from Airflow")
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    assert code.count(f'"{README_FILE}"') == 1
    warehouse = tmp_path / "warehouse.duckdb"
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "readme_dag.py").write_text(code.replace(README_FILE, str(warehouse)))
    point_octopush_at(sandbox)

    bag = DagBag(dag_folder=dags)
    assert not bag.import_errors, bag.import_errors
    DagBundlesManager().sync_bundles_to_db()  # what the DAG processor would do
    sync_bag_to_db(bag, "dags-folder", None)
    run = bag.dags["octopush_to_duckdb"].test()

    assert run.state == "success"
    with duckdb.connect(str(warehouse), read_only=True) as db:
        conversations = db.sql("SELECT conversation_id FROM octopush.conversations").fetchall()
        messages = db.sql("SELECT message_id FROM octopush.messages").fetchall()
    assert sorted(row[0] for row in conversations) == sorted(expected_table(sandbox.store))
    assert sorted(row[0] for row in messages) == sorted(expected_messages(sandbox.store))
