"""What a person sees while a load runs: a progress line every few seconds, and a summary.

The loads run against the sandbox over HTTP, slowed down so that they take a few seconds, with
the progress interval shortened to match; the lines are read from the log as a person reads
them, and dlt's own collectors are checked to see the same counts.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Callable

import dlt
import pytest
from dlt.common.runtime.collector import LogCollector
from dlt.extract.source import DltSource
from dlt.pipeline.exceptions import PipelineStepFailed

from octopush_dlt import progress
from octopush_dlt.runner import LoadSummary, run_load
from octopush_provider.sandbox import SandboxServer
from tests.helpers import sandbox_source

PROGRESS = "octopush_dlt.progress"
# Each request of the slowed sandbox takes this long: 250 conversations' messages, 4 at a time,
# take about 2.5 s, several progress intervals.
LATENCY = 0.04
EVERY = 0.5


@pytest.fixture
def slow_load(
    make_sandbox: Callable[..., SandboxServer],
    make_pipeline: Callable[..., dlt.Pipeline],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Callable[..., LoadSummary]:
    """Runs a load of a slowed sandbox, 10 conversations a page, with a short progress interval."""
    monkeypatch.setattr(progress, "PROGRESS_EVERY_SECONDS", EVERY)
    caplog.set_level(logging.INFO)
    sandbox = make_sandbox(latency=LATENCY)

    def load(**options: object) -> LoadSummary:
        return run_load(make_pipeline(), sandbox_source(sandbox, per_page=10, **options))

    return load


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == PROGRESS]


def test_a_slow_list_read_logs_a_progress_line_every_few_seconds_not_every_page(
    slow_load: Callable[..., LoadSummary], caplog: pytest.LogCaptureFixture
) -> None:
    summary = slow_load(resources=["conversations"], concurrency=1)

    lines = progress_lines(caplog)
    # Far fewer lines than the 25 pages, and at most one an interval.
    assert 1 <= len(lines) <= summary.read_seconds / EVERY
    for line in lines:
        assert re.fullmatch(
            r"Octopush list: \d+ pages, [\d,]+ conversations \([\d,]+ requests\) "
            r"in [\d.]+s, \d+/s",
            line,
        ), line


def test_messages_and_slices_tell_what_is_done_of_what_is_due_and_the_time_left(
    slow_load: Callable[..., LoadSummary], caplog: pytest.LogCaptureFixture
) -> None:
    summary = slow_load(concurrency=4, slice_conversations=100)

    messages = [line for line in progress_lines(caplog) if line.startswith("Octopush messages")]
    assert 2 <= len(messages) <= summary.duration_seconds / EVERY, messages
    for line in messages:
        # A line may fall on a slice's last conversation: nothing is left to estimate then.
        done = re.fullmatch(
            r"Octopush messages: (\d+) of (\d+) conversations \(\d+ requests\) "
            r"in [\d.]+s, \d+/s(, about [\dhms ]+?[\d.]*s left)?",
            line,
        )
        assert done is not None, line
        assert 0 < int(done[1]) <= int(done[2]) <= 100  # each slice reads its own
        assert (int(done[1]) < int(done[2])) == (done[3] is not None), line
    slices = [record.getMessage() for record in caplog.records if "slice" in record.getMessage()]
    assert len(slices) == 2, slices
    for number, (line, done) in enumerate(zip(slices, (100, 200), strict=True), start=1):
        assert re.fullmatch(
            rf"Octopush first load: slice {number} committed, {done} of 250 conversations "
            r"in [\d.]+s, \d+/s, about [\d.]+s left",
            line,
        ), line


def test_dlt_normalize_and_load_steps_log_a_progress_line_every_few_seconds(
    make_sandbox: Callable[..., SandboxServer],
    make_pipeline: Callable[..., dlt.Pipeline],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Loading 250 conversations and their messages into DuckDB takes a few hundred ms, many
    # intervals of 10 ms: the steps after the read are long enough to be seen.
    every = 0.01
    monkeypatch.setattr(progress, "PROGRESS_EVERY_SECONDS", every)
    caplog.set_level(logging.INFO)
    pipeline = make_pipeline()

    run_load(pipeline, sandbox_source(make_sandbox()))

    steps = [line for line in progress_lines(caplog) if line.startswith("Octopush dlt ")]
    assert steps, progress_lines(caplog)
    for line in steps:
        assert re.fullmatch(
            r"Octopush dlt normalize: [\d,]+ rows of [\d,]+ files? in [\d.]+s, [\d,]+/s"
            r"|Octopush dlt load: \d+ of \d+ jobs in [\d.]+s",
            line,
        ), line
    load = [line for line in steps if line.startswith("Octopush dlt load")]
    took = {step.step: step.finished_at - step.started_at for step in pipeline.last_trace.steps}
    assert len(load) <= took["load"].total_seconds() / every + 1, load
    assert "octopush-progress" not in {thread.name for thread in threading.enumerate()}


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(lambda pipeline, source: pipeline.run(source), id="pipeline.run"),
        pytest.param(run_load, id="run_load"),
    ],
)
def test_a_dlt_user_sees_our_counts_in_the_progress_collector_they_chose(
    sandbox: SandboxServer,
    make_pipeline: Callable[..., dlt.Pipeline],
    load: Callable[[dlt.Pipeline, DltSource], object],
) -> None:
    shown = io.StringIO()
    collector = LogCollector(log_period=0, logger=shown, dump_system_stats=False)
    pipeline = make_pipeline(progress=collector)

    load(pipeline, sandbox_source(sandbox))

    text = shown.getvalue()
    assert re.search(r"^Octopush list: 250 ", text, re.MULTILINE), text[-2000:]
    assert re.search(r"^Octopush messages: 250/250 \(100.0%\)", text, re.MULTILINE)
    # dlt's own counts go on reaching it when the runner watches the steps.
    assert re.search(r"^Jobs: \d+/\d+ \(100.0%\)", text, re.MULTILINE), text[-2000:]
    assert pipeline.collector is collector


def test_a_failed_load_stops_the_progress_thread_and_gives_the_collector_back(
    make_sandbox: Callable[..., SandboxServer], make_pipeline: Callable[..., dlt.Pipeline]
) -> None:
    pipeline = make_pipeline()
    collector = pipeline.collector

    with pytest.raises(PipelineStepFailed):
        run_load(pipeline, sandbox_source(make_sandbox(), api_key="wrong-key"))

    assert pipeline.collector is collector
    assert "octopush-progress" not in {thread.name for thread in threading.enumerate()}
