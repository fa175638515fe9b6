"""dlt's entry points are the contract: every way of running the source lands the same tables.

One sandbox account larger than a slice is loaded in lockstep through plain
``pipeline.run(octopush_source())``, dlt's ``with_resources``, :func:`run_load` (which commits a
first load in slices) and ``octopush-load`` (a real process); each pipeline's tables and cursor
are compared with each other and with what the sandbox serves, computed here without the
connector's parsers. The Airflow operator's row of the matrix is in
``tests/airflow/test_entry_points.py``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from octopush_dlt.runner import run_load
from octopush_dlt.settings import SLICE_CONVERSATIONS
from octopush_provider.exceptions import (
    OctopushConfigError,
    OctopushMismatchError,
    OctopushResponseError,
)
from octopush_provider.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_LOGIN,
    ConversationStore,
    SandboxServer,
)
from tests.helpers import landed, root_cause, sandbox_source, served

pytestmark = pytest.mark.matrix

ACCOUNT = 700  # conversations: more than one slice of the runner's
SLICE = 300
BEYOND_DEFAULT_SLICE = SLICE_CONVERSATIONS + 100  # what a first load sliced by default would cut
SECRET = "matrix-pepper"
PHONE = "recipient_details__phone_number"
RESOURCES_BOTH = ["conversations", "messages"]


@dataclass
class EntryPoint:
    """One way a user runs the source, on a pipeline of its own."""

    name: str
    directory: Path
    sandbox: SandboxServer
    options: dict[str, Any]

    @property
    def database(self) -> Path:
        return self.directory / "octopush_conversations.duckdb"

    def pipeline(self) -> dlt.Pipeline:
        return dlt.pipeline(
            pipeline_name="octopush_conversations",
            destination=dlt.destinations.duckdb(str(self.database)),
            dataset_name="octopush",
            pipelines_dir=str(self.directory / "dlt" / "pipelines"),
        )

    def run(self, *, full_refresh: bool = False) -> None:
        source = sandbox_source(self.sandbox, **self.options)
        if self.name == "pipeline.run":
            self.pipeline().run(source, refresh="drop_sources" if full_refresh else None)
        elif self.name == "with_resources":
            self.pipeline().run(
                source.with_resources("conversations", "messages"),
                refresh="drop_sources" if full_refresh else None,
            )
        elif self.name == "run_load":
            run_load(self.pipeline(), source, full_refresh=full_refresh, slice_conversations=SLICE)
        else:
            self._cli(*(["--full-refresh"] if full_refresh else []))

    def _cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")} | {
            "DLT_DATA_DIR": str(self.directory / "dlt"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "SOURCES__OCTOPUSH__API_LOGIN": DEFAULT_API_LOGIN,
            "SOURCES__OCTOPUSH__API_KEY": DEFAULT_API_KEY,
            "SOURCES__OCTOPUSH__BASE_URL": self.sandbox.base_url,
            "SOURCES__OCTOPUSH__SLICE_CONVERSATIONS": str(SLICE),
        }
        options = ["--detect-deletes"] if self.options.get("detect_deletes") else []
        if "deletes_mode" in self.options:
            options += ["--deletes-mode", self.options["deletes_mode"]]
        if "hash_columns" in self.options:
            env["SOURCES__OCTOPUSH__HASH_SECRET"] = self.options["hash_secret"]
            options += [f"--hash-column={column}" for column in self.options["hash_columns"]]
        result = subprocess.run(
            [sys.executable, "-m", "octopush_dlt", *options, *args],
            cwd=self.directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result

    def landed(self) -> dict[str, Any]:
        return landed(self.database, self.pipeline().state)


ENTRY_POINTS = ("pipeline.run", "with_resources", "run_load", "octopush-load")


def _entry_points(
    tmp_path: Path, sandbox: SandboxServer, names: tuple[str, ...] = ENTRY_POINTS, **options: Any
) -> list[EntryPoint]:
    made = []
    for name in names:
        directory = tmp_path / name.replace(".", "_")
        directory.mkdir()
        made.append(EntryPoint(name, directory, sandbox, options))
    return made


def _assert_all_land(entry_points: list[EntryPoint], expected: dict[str, Any], step: str) -> None:
    for entry in entry_points:
        got = entry.landed()
        assert got["rows"] == (len(expected["conversations"]), len(expected["messages"])), (
            step,
            entry.name,
        )
        for part in ("conversations", "messages", "cursor"):
            assert got[part] == expected[part], (step, entry.name, part)


def test_every_entry_point_lands_the_same_tables_and_cursor(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=ACCOUNT)
    entry_points = _entry_points(tmp_path, sandbox)

    for entry in entry_points:
        entry.run()
    _assert_all_land(entry_points, served(sandbox.store), "first load")

    sandbox.store.add_new(5)
    sandbox.store.bump(3)
    for entry in entry_points:
        entry.run()
    _assert_all_land(entry_points, served(sandbox.store), "incremental")

    sandbox.store.bump(2)
    for entry in entry_points:
        entry.run(full_refresh=True)
    _assert_all_land(entry_points, served(sandbox.store), "full refresh")


def test_hashed_columns_are_the_same_keyed_digest_through_every_entry_point(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=150)
    entry_points = _entry_points(
        tmp_path, sandbox, hash_columns=[PHONE], hash_secret=SECRET, resources=RESOURCES_BOTH
    )
    raw = {row[PHONE.replace("recipient_details__", "")] for row in _details(sandbox.store)}

    for entry in entry_points:
        entry.run()

    digests = []
    for entry in entry_points:
        with duckdb.connect(str(entry.database), read_only=True) as db:
            rows = db.execute(
                f"SELECT conversation_id, {PHONE} FROM octopush.conversations ORDER BY 1"
            ).fetchall()
        assert len(rows) == 150
        assert not raw & {phone for _, phone in rows}, entry.name
        digests.append(rows)
    assert all(rows == digests[0] for rows in digests), "the entry points hashed differently"


def _details(store: ConversationStore) -> list[dict[str, str]]:
    return [row["recipient_details"] for row in store.snapshot()]


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_deletions_are_marked_by_the_runner_and_refused_by_plain_pipeline_run(
    tmp_path, make_sandbox, mode
):
    sandbox = make_sandbox(conversations=200)
    plain, selected, runner, cli = _entry_points(tmp_path, sandbox)
    for entry in (plain, selected, runner, cli):
        entry.run()
    gone = set(
        sandbox.store.delete([row["conversation_id"] for row in sandbox.store.snapshot()[3:10]])
    )
    for entry in (plain, selected, runner, cli):
        entry.options = {"detect_deletes": True, "deletes_mode": mode}

    for entry in (plain, selected):
        with pytest.raises(PipelineStepFailed) as failed:
            entry.run()
        assert isinstance(root_cause(failed.value), OctopushConfigError)
        assert "detect_deletes" in str(root_cause(failed.value))
        assert "run_load" in str(root_cause(failed.value))
    runner.run()
    cli.run()

    for entry in (runner, cli):
        with duckdb.connect(str(entry.database), read_only=True) as db:
            if mode == "soft":
                rows = db.execute(
                    "SELECT conversation_id FROM octopush.conversations "
                    "WHERE _octopush_deleted_at IS NOT NULL"
                ).fetchall()
                assert {cid for (cid,) in rows} == gone, entry.name
            else:
                left = db.execute("SELECT conversation_id FROM octopush.conversations").fetchall()
                orphans = db.execute(
                    "SELECT count(*) FROM octopush.messages WHERE conversation_id IN "
                    f"({', '.join(repr(cid) for cid in gone)})"
                ).fetchone()
                assert not gone & {cid for (cid,) in left}, entry.name
                assert orphans == (0,), entry.name
    for entry in (plain, selected):  # refused: nothing moved, nothing marked
        assert entry.landed()["rows"][0] == 200


def test_selecting_messages_without_conversations_is_refused_and_moves_no_state(
    tmp_path, make_sandbox
):
    sandbox = make_sandbox(conversations=120)
    (plain,) = _entry_points(tmp_path, sandbox, ("pipeline.run",))
    plain.run()
    sandbox.store.add_new(4)
    pipeline = plain.pipeline()
    before = pipeline.state["sources"]["octopush"]["resources"]

    with pytest.raises(PipelineStepFailed) as failed:
        pipeline.run(sandbox_source(sandbox).with_resources("messages"))

    error = root_cause(failed.value)
    assert isinstance(error, OctopushConfigError)
    assert str(error) == (
        "with_resources('messages'): messages are read for the conversations each run reads, "
        "so select 'conversations' with them"
    )
    assert plain.pipeline().state["sources"]["octopush"]["resources"] == before


def test_with_resources_conversations_loads_the_account_in_one_run(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=ACCOUNT)
    (plain,) = _entry_points(tmp_path, sandbox, ("pipeline.run",))
    pipeline = plain.pipeline()

    pipeline.run(sandbox_source(sandbox, slice_conversations=None).with_resources("conversations"))

    with pipeline.sql_client() as client:
        assert client.execute_sql("SELECT count(*) FROM conversations")[0][0] == ACCOUNT
    assert "messages" not in pipeline.default_schema.data_table_names()
    assert "messages" not in pipeline.state["sources"]["octopush"]["resources"]


def test_replace_reloads_the_whole_account_every_run(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=BEYOND_DEFAULT_SLICE)
    (plain,) = _entry_points(tmp_path, sandbox, ("pipeline.run",))

    for _ in range(2):
        plain.pipeline().run(sandbox_source(sandbox), write_disposition="replace")
        _assert_all_land([plain], served(sandbox.store), "replace")
        sandbox.store.bump(2)


@pytest.mark.parametrize(
    ("hints", "refused"),
    [
        ({"write_disposition": "append"}, "write_disposition 'append' for conversations"),
        ({"messages": "replace"}, "replace both tables or neither"),
    ],
)
def test_dispositions_that_would_lose_or_double_rows_are_refused(
    tmp_path, make_sandbox, hints, refused
):
    sandbox = make_sandbox(conversations=50)
    (plain,) = _entry_points(tmp_path, sandbox, ("pipeline.run",))
    source = sandbox_source(sandbox)
    if "messages" in hints:
        source.messages.apply_hints(write_disposition=hints["messages"])
        hints = {}

    with pytest.raises(PipelineStepFailed) as failed:
        plain.pipeline().run(source, **hints)

    assert refused in str(root_cause(failed.value))


def test_a_dev_mode_pipeline_loads_the_whole_account(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=BEYOND_DEFAULT_SLICE)
    pipeline = dlt.pipeline(
        pipeline_name="octopush_dev",
        destination=dlt.destinations.duckdb(str(tmp_path / "dev.duckdb")),
        pipelines_dir=str(tmp_path / "pipelines"),
        dev_mode=True,
    )

    pipeline.run(sandbox_source(sandbox))

    with pipeline.sql_client() as client:
        count = client.execute_sql("SELECT count(*) FROM conversations")[0][0]
    assert count == BEYOND_DEFAULT_SLICE


def test_a_slice_asked_for_under_plain_pipeline_run_says_what_remains(
    tmp_path, make_sandbox, caplog
):
    sandbox = make_sandbox(conversations=ACCOUNT)
    (plain,) = _entry_points(tmp_path, sandbox, ("pipeline.run",))
    pipeline = plain.pipeline()

    with caplog.at_level(logging.WARNING, logger="octopush_dlt"):
        pipeline.run(sandbox_source(sandbox, slice_conversations=SLICE))

    assert "about 400 remain. Run the pipeline again to continue" in caplog.text
    metrics = pipeline.last_trace.last_extract_info.metrics
    custom = [
        resource.custom_metrics
        for steps in metrics.values()
        for step in steps
        for name, resource in step["resource_metrics"].items()
        if name == "conversations"
    ]
    assert {"conversations_remaining": 400} in custom
    for _ in range(2):
        pipeline.run(sandbox_source(sandbox, slice_conversations=SLICE))
    _assert_all_land([plain], served(sandbox.store), "three slices")


def test_add_limit_counts_batches_of_conversations_and_keeps_the_cursor(tmp_path, make_sandbox):
    sandbox = make_sandbox(conversations=10_500)
    (plain,) = _entry_points(tmp_path, sandbox, ("pipeline.run",))
    pipeline = plain.pipeline()
    source = sandbox_source(sandbox, resources=["conversations"])
    source.conversations.add_limit(1)

    pipeline.run(source)

    with pipeline.sql_client() as client:
        newest = client.execute_sql("SELECT count(*) FROM conversations")[0][0]
    assert newest == 10_000  # one batch: the newest 10,000 conversations
    assert "cursor" not in pipeline.state["sources"]["octopush"]["resources"]["conversations"]
    pipeline.run(sandbox_source(sandbox, resources=["conversations"]))
    with pipeline.sql_client() as client:
        assert client.execute_sql("SELECT count(*) FROM conversations")[0][0] == 10_500


def _failure(pipeline: dlt.Pipeline, source: Any, *, through_runner: bool) -> BaseException:
    """The error behind the failed run of ``source``, through run_load or plain pipeline.run."""
    with pytest.raises(PipelineStepFailed) as failed:
        if through_runner:
            run_load(pipeline, source)
        else:
            pipeline.run(source)
    return root_cause(failed.value)


@pytest.mark.parametrize("runner", [False, True])
def test_a_messages_endpoint_that_ignores_the_filter_fails_the_run(tmp_path, make_sandbox, runner):
    sandbox = make_sandbox(conversations=40)
    sandbox.unreadable_ids.update(row["conversation_id"] for row in sandbox.store.snapshot())
    (plain,) = _entry_points(tmp_path, sandbox, ("pipeline.run",))
    source = sandbox_source(sandbox)

    error = _failure(plain.pipeline(), source, through_runner=runner)

    assert isinstance(error, OctopushMismatchError)
    assert str(error).startswith(
        f"40 of the 40 conversations read got messages that cannot be theirs: the messages "
        f"endpoint {sandbox.base_url}/conversations/messages/list seems to ignore the "
        "conversation_id filter"
    )
    if plain.database.exists():  # nothing of the run landed
        with duckdb.connect(str(plain.database), read_only=True) as db:
            tables = db.execute("SELECT table_name FROM information_schema.tables").fetchall()
        assert ("conversations",) not in tables


@pytest.mark.parametrize("runner", [False, True])
def test_an_account_that_answers_it_has_no_conversation_after_a_load_fails_the_run(
    tmp_path, make_sandbox, runner
):
    sandbox = make_sandbox(conversations=30)
    (plain,) = _entry_points(tmp_path, sandbox, ("pipeline.run",))
    plain.run()
    cursor = plain.landed()["cursor"]
    sandbox.store.delete([row["conversation_id"] for row in sandbox.store.snapshot()])
    source = sandbox_source(sandbox, resources=["conversations"])

    error = _failure(plain.pipeline(), source, through_runner=runner)

    assert isinstance(error, OctopushResponseError)
    assert str(error).startswith(
        f"page 1 of {sandbox.base_url}/conversations/list answered that the account has no "
        "conversation, but this pipeline loaded conversations before"
    )
    assert plain.landed()["rows"][0] == 30  # nothing moved
    assert plain.landed()["cursor"] == cursor
