"""A DuckDB file is opened once for a run, checkpointed once at its end, and left closed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from octopush_dlt.runner import run_load
from tests.helpers import conversations_source, expected_table, loaded_table

_COUNT = """
import sys, duckdb
with duckdb.connect(sys.argv[1]) as db:
    print(db.sql("SELECT count(*) FROM octopush.conversations").fetchall()[0][0])
"""


def _count_from_another_process(path: Path) -> int:
    """The rows another process finds, opening the file for writing: DuckDB refuses it while a
    connection of this process still holds the file (this process's own would join it)."""
    command = [sys.executable, "-c", _COUNT, str(path)]
    counted = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert counted.returncode == 0, counted.stderr
    return int(counted.stdout)


def test_a_load_keeps_the_file_open_to_its_end_and_leaves_it_closed(
    make_sandbox, make_pipeline, tmp_path, monkeypatch
):
    sandbox = make_sandbox(conversations=300)
    path = tmp_path / "warehouse.duckdb"
    wal = Path(f"{path}.wal")
    pipeline = make_pipeline(destination=dlt.destinations.duckdb(str(path)))
    logged_after_load: list[bool] = []
    load = dlt.Pipeline.load

    def noted_load(self, *args, **kwargs):
        info = load(self, *args, **kwargs)
        logged_after_load.append(wal.exists() and wal.stat().st_size > 0)
        return info

    monkeypatch.setattr(dlt.Pipeline, "load", noted_load)

    run_load(pipeline, conversations_source(sandbox))

    # Closing the file writes a checkpoint, which empties the log: the rows are still in the
    # log when dlt's load step ends, so the step did not close the file; run_load did, after.
    assert logged_after_load == [True]
    assert not wal.exists()
    assert _count_from_another_process(path) == 300  # no lock is left behind
    assert loaded_table(pipeline) == expected_table(sandbox.store)


def test_a_failed_load_leaves_the_file_closed(make_sandbox, make_pipeline, tmp_path):
    sandbox = make_sandbox(conversations=300)
    path = tmp_path / "warehouse.duckdb"
    pipeline = make_pipeline(destination=dlt.destinations.duckdb(str(path)))
    run_load(pipeline, conversations_source(sandbox))
    sandbox.add_fault("400", page=1, times=10)  # not retried: the run fails in its read

    with pytest.raises(PipelineStepFailed, match="extract"):
        run_load(pipeline, conversations_source(sandbox))

    assert _count_from_another_process(path) == 300
