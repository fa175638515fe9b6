"""The operator's row of the entry-point matrix (``tests/e2e/test_entry_points.py``).

The example DuckDB DAG and a plain ``pipeline.run(octopush_source())`` load the same sandbox
account, larger than one of the operator's slices, in lockstep: after a first load and after an
incremental run on moved data, both files hold what the sandbox serves, and the same cursor.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dlt
import pytest

from octopush_provider.sandbox import SandboxServer
from tests.airflow.support import restored_pipeline, return_value, run_dag
from tests.helpers import landed, sandbox_source, served

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.matrix]

ACCOUNT = 700
SLICE = 300


def test_the_operator_lands_what_plain_pipeline_run_lands(
    make_sandbox: Callable[..., SandboxServer],
    point_octopush_at: Callable[[SandboxServer], None],
    duckdb_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    sandbox = make_sandbox(conversations=ACCOUNT)
    point_octopush_at(sandbox)
    monkeypatch.setenv("SOURCES__OCTOPUSH__SLICE_CONVERSATIONS", str(SLICE))
    plain_file = tmp_path / "plain.duckdb"
    plain = dlt.pipeline(
        pipeline_name="octopush_plain",
        destination=dlt.destinations.duckdb(str(plain_file)),
        dataset_name="octopush",
        pipelines_dir=str(tmp_path / "plain-pipelines"),
    )

    for step in ("first load", "incremental"):
        run = run_dag("octopush_conversations_to_duckdb")
        plain.run(sandbox_source(sandbox, slice_conversations=None))

        assert run.state == "success", step
        if step == "first load":
            assert return_value(run)["slices"] == 3  # 700 conversations by 300
        operator = restored_pipeline(
            dlt.destinations.duckdb(str(duckdb_file)),
            dataset_name="octopush",
            workdir=tmp_path / step.replace(" ", "-"),
        )
        expected = served(sandbox.store)
        for name, got in (
            ("operator", landed(duckdb_file, operator.state)),
            ("pipeline.run", landed(plain_file, plain.state)),
        ):
            assert got["rows"] == (len(expected["conversations"]), len(expected["messages"]))
            for part in ("conversations", "messages", "cursor"):
                assert got[part] == expected[part], (step, name, part)
        sandbox.store.add_new(5)
        sandbox.store.bump(3)
