"""The summary of a load, as a data engineer reads it: short lines, plain words, wall time.

Loads run against the sandbox over HTTP into DuckDB; the figures the lines must show are taken
from the sandbox and the clock, not from the summary itself.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import pytest

from octopush_dlt.runner import TERMS, LoadSummary, MessagesSummary, run_load
from octopush_provider.sandbox import SandboxServer
from tests.helpers import sandbox_source

REPO = Path(__file__).resolve().parents[2]
# What a log viewer shows without cutting the line.
SHORT = 100


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown page."""
    return {
        re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    }


def every_line_of_a_summary() -> LoadSummary:
    """A summary with every optional line: each of our terms appears in it."""
    return LoadSummary(
        pipeline_name="octopush_conversations",
        destination="duckdb",
        dataset_name="octopush",
        table="conversations",
        load_id="1796614461.5031734",
        new=5000,
        updated=12,
        unchanged=3,
        future=2,
        pages=50,
        requests=51,
        retries=1,
        reread=True,
        stop_reason="empty_page",
        cursor="2026-11-01T10:20:04+00:00",
        ordering_unreliable=True,
        read_seconds=4.2,
        duration_seconds=62.5,
        slices=4,
        messages=MessagesSummary(
            table="messages",
            conversations_read=5017,
            messages_loaded=74424,
            requests=5100,
            kept_apart=2,
            disagreeing=1,
        ),
        deletions={"mode": "soft", "held": 5017, "seen": 5012, "marked": 5, "deleted_at": "x"},
    )


def test_a_run_with_nothing_new_says_so_and_names_the_cursor(
    sandbox: SandboxServer, make_pipeline: Callable[..., dlt.Pipeline]
) -> None:
    pipeline = make_pipeline()
    first = run_load(pipeline, sandbox_source(sandbox))

    second = run_load(pipeline, sandbox_source(sandbox))

    assert not first.lines()[0].startswith("nothing new")
    assert re.fullmatch(
        rf"nothing new since {re.escape(str(first.cursor))} in duckdb:octopush "
        r"\(checked in [\d.]+s\)",
        second.lines()[0],
    )
    assert "  conversations: 0 new, 0 updated, 1 unchanged" in "\n".join(second.lines())


def test_the_duration_is_the_wall_time_of_the_whole_run(
    make_sandbox: Callable[..., SandboxServer], make_pipeline: Callable[..., dlt.Pipeline]
) -> None:
    sandbox = make_sandbox(latency=0.01)
    pipeline, source = make_pipeline(), sandbox_source(sandbox)
    started = time.monotonic()

    summary = run_load(pipeline, source)

    wall = time.monotonic() - started
    # Reading is a small part of a run: normalising, loading and checking take the rest.
    assert summary.read_seconds < summary.duration_seconds <= wall + 0.001  # to the ms
    assert summary.duration_seconds > 0.8 * wall
    assert f" in {summary.duration_seconds:.1f}s (load id " in summary.lines()[0]


def test_summary_lines_are_short_and_each_term_links_to_its_explanation() -> None:
    lines = every_line_of_a_summary().lines()

    documented = anchors((REPO / TERMS).read_text(encoding="utf-8"))
    linked = [anchor for line in lines for anchor in re.findall(rf"{TERMS}#([a-z-]+)", line)]
    assert [line for line in lines if len(line) > SHORT] == []
    assert set(linked) >= {
        "conversations",
        "list",
        "kept-apart",
        "disagree",
        "ordering-unreliable",
        "slices",
        "deletions",
    }
    assert set(linked) <= documented
    assert lines[0] == "loaded into duckdb:octopush in 1m 02s (load id 1796614461.5031734)"


READ_ENDED = re.compile(
    r"Octopush read ended \(\w+\): (\d+) pages, \d+ conversations, (\d+) requests, (\d+) retries"
)


def logged_reads(caplog: pytest.LogCaptureFixture) -> tuple[int, int, int]:
    """Pages, requests and retries of every "read ended" line of the log, added up."""
    found = [READ_ENDED.match(record.getMessage()) for record in caplog.records]
    figures = [tuple(int(number) for number in match.groups()) for match in found if match]
    assert figures, "no read ended line"
    return (
        sum(pages for pages, _, _ in figures),
        sum(requests for _, requests, _ in figures),
        sum(retries for _, _, retries in figures),
    )


@pytest.mark.parametrize(
    ("server", "options", "runs"),
    [
        pytest.param({}, {"slice_conversations": 100}, 1, id="first-load-in-slices"),
        pytest.param(
            {"fault_rate": 0.2, "fault_kinds": ("429", "503")},
            {"resources": ["conversations"], "per_page": 10},
            1,
            id="retried-pages",
        ),
        pytest.param({}, {}, 2, id="nothing-new"),
        # The second run checks for deletions: it reads the head of the list again.
        pytest.param({}, {"detect_deletes": True}, 2, id="deletion-check"),
    ],
)
def test_pages_requests_and_retries_agree_in_the_log_the_summary_and_xcom(
    make_sandbox: Callable[..., SandboxServer],
    make_pipeline: Callable[..., dlt.Pipeline],
    caplog: pytest.LogCaptureFixture,
    server: dict[str, Any],
    options: dict[str, Any],
    runs: int,
) -> None:
    caplog.set_level(logging.INFO)
    sandbox, pipeline = make_sandbox(**server), make_pipeline()
    for _ in range(runs):
        caplog.clear()
        summary = run_load(pipeline, sandbox_source(sandbox, **options))

    pages, requests, retries = logged_reads(caplog)
    xcom = summary.as_dict()
    assert (summary.pages, summary.requests, summary.retries) == (pages, requests, retries)
    assert (xcom["pages"], xcom["requests"], xcom["retries"]) == (pages, requests, retries)
    text = "\n".join(summary.lines())
    assert f"  list: {pages} pages, {requests} requests, {retries} retr" in text
    if "fault_rate" in server:
        assert retries > 0
    if "slice_conversations" in options:  # 250 conversations: three reads, three log lines
        assert "  first load: 3 slices; the list line adds up their reads" in text
