"""Benchmark: every speed and memory goal of the load, each against its floor from the same run.

The sandbox runs in its own process (serving must not share our interpreter) with 20 ms of
latency per request. The floor of a load is a bare download of the same pages over the same
sandbox with the same number of connections (8): bodies read and dropped. Each of our loads runs
in a child process of its own, into a new DuckDB file, so that its peak RSS is the loading
process's alone. Floors and loads alternate, three of each, and the figures are min/median.

Goals (a verdict is printed for each, on the median ratio):

- 100,000 conversations, 100 a page: within 1.25x the floor;
- 100,000 conversations, 1,000 a page: within 2.5x the floor;
- incremental run with nothing new: 2 requests (page 1, and page 2 to prove the order across
  it), under a second;
- with ``--big``: 1,000,000 conversations within 1.15x the floor, peak RSS <= 400 MiB (one run
  each: it takes a minute or two);
- a first load through plain ``pipeline.run(octopush_source(...))`` no slower than through
  ``run_load``, wall and CPU seconds, conversations only and with messages, on an account of
  6,000 conversations (more than a slice: if either entry point loads less, it says so);
- messages: ``messages_speed.py`` beside this file prints its own figures, when it exists;
- memory against a hostile server whose pages are just under the size cap: peak RSS under
  1 GiB (``hostile_memory.py`` beside this file).

Prints figures; asserts nothing. ``python tests/benchmarks/load_speed.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt
import requests

from octopush_dlt import octopush_source
from octopush_dlt.destinations import duckdb_credentials
from octopush_dlt.runner import run_load
from octopush_dlt.settings import SLICE_CONVERSATIONS
from octopush_provider.sandbox import DEFAULT_API_KEY, DEFAULT_API_LOGIN
from octopush_provider.settings import LOAD_CONCURRENCY

sys.path.insert(0, str(Path(__file__).parent))
import hostile_memory  # beside this file: the benchmarks run as scripts

HEADERS = {"api-login": DEFAULT_API_LOGIN, "api-key": DEFAULT_API_KEY}
FLOOR_CONNECTIONS = 8
MESSAGES_BENCH = Path(__file__).with_name("messages_speed.py")
# The entry points' comparison: an account larger than a slice, so that a first load that stops
# at a slice shows; with messages, a load of it takes seconds, not minutes.
ENTRY_CONVERSATIONS = SLICE_CONVERSATIONS + 1_000
ENTRY_POINTS = ("run_load", "pipeline.run")
CONVERSATIONS_ONLY = ("conversations",)


@contextmanager
def sandbox_process(conversations: int, latency_ms: float) -> Iterator[str]:
    """Run ``python -m octopush_provider.sandbox`` and yield its base URL."""
    process = subprocess.Popen(
        [
            sys.executable, "-m", "octopush_provider.sandbox", "--port", "0",
            "--conversations", str(conversations), "--latency-ms", str(latency_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base_url = next(word for word in line.split() if word.startswith("http://"))
        yield base_url.rstrip(",;")
    finally:
        process.terminate()
        process.wait(timeout=30)


def download_only(base_url: str, pages: int, per_page: int) -> float:
    """Seconds to fetch pages 1..pages over the floor's keep-alive connections."""
    sessions = [requests.Session() for _ in range(FLOOR_CONNECTIONS)]

    def fetch(page: int) -> int:
        session = sessions[page % FLOOR_CONNECTIONS]
        response = session.get(
            f"{base_url}/conversations/list",
            params={"page": page, "per_page": per_page},
            headers=HEADERS,
            timeout=30,
        )
        response.raise_for_status()
        return len(response.content)

    started = time.perf_counter()
    with ThreadPoolExecutor(FLOOR_CONNECTIONS) as pool:
        sum(pool.map(fetch, range(1, pages + 1)))
    return time.perf_counter() - started


def ours_run(
    base_url: str,
    workdir: Path,
    per_page: int,
    concurrency: int,
    *,
    entry: str = "run_load",
    tables: tuple[str, ...] = CONVERSATIONS_ONLY,
) -> dict[str, Any]:
    """One load into ``workdir``'s DuckDB file through ``entry`` (one of ``ENTRY_POINTS``): its
    wall and CPU seconds, list requests (``run_load`` only) and rows of each table."""
    pipeline = dlt.pipeline(
        "bench_ours",
        destination=dlt.destinations.duckdb(
            duckdb_credentials(str(workdir / "ours.duckdb"), dataset_name="octopush")
        ),
        dataset_name="octopush",
        pipelines_dir=str(workdir / "pipelines"),
    )
    source = octopush_source(
        api_login=DEFAULT_API_LOGIN,
        api_key=DEFAULT_API_KEY,
        base_url=base_url,
        per_page=per_page,
        resources=list(tables),  # conversations by default, the same table as rest_api's
        concurrency=concurrency,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    if entry == "run_load":
        requests_made: int | None = run_load(pipeline, source).requests
    else:
        pipeline.run(source)
        requests_made = None
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    with pipeline.sql_client() as client:
        counts = {
            table: int(client.execute_sql(f"SELECT count(*) FROM {table}")[0][0])
            for table in tables
        }
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "requests": requests_made,
        "rows": counts["conversations"],
        "messages": counts.get("messages"),
    }


def load_in_child(
    base_url: str,
    workdir: Path,
    per_page: int,
    concurrency: int,
    *,
    entry: str = "run_load",
    tables: tuple[str, ...] = CONVERSATIONS_ONLY,
) -> dict[str, Any]:
    """:func:`ours_run` in a new process; adds that process's peak RSS in MiB."""
    child = subprocess.run(
        [
            sys.executable, __file__, "--child-load", base_url,
            "--workdir", str(workdir), "--per-page", str(per_page),
            "--concurrency", str(concurrency), "--entry", entry, "--tables", ",".join(tables),
        ],
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def child_load(
    base_url: str, workdir: Path, per_page: int, concurrency: int, entry: str, tables: str
) -> None:
    result = ours_run(
        base_url, workdir, per_page, concurrency, entry=entry, tables=tuple(tables.split(","))
    )
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


@dataclass
class Goal:
    """Our load against its floor: times of both, and the ratio the goal allows."""

    label: str
    limit: float
    floors: list[float]
    loads: list[dict[str, Any]]

    def report(self) -> None:
        ours = [load["seconds"] for load in self.loads]
        ratios = (min(ours) / min(self.floors), median(ours) / median(self.floors))
        rss = max(load["peak_rss_mib"] for load in self.loads)
        rows = {load["rows"] for load in self.loads}
        cpu = [load["cpu_seconds"] for load in self.loads]
        line(self.label, f"floor {pair(self.floors)} s, ours {pair(ours)} s ({pair(cpu)} s CPU)")
        line("", f"ratio {ratios[0]:.2f}/{ratios[1]:.2f}x (goal <= {self.limit}x): "
             f"{verdict(ratios[1] <= self.limit)}")  # fmt: skip
        line("", f"peak RSS {rss:.0f} MiB, {requests_of(self.loads)} requests, rows {rows}")


def pair(values: list[float]) -> str:
    """min/median, the way every figure here is given."""
    return f"{min(values):.2f}/{median(values):.2f}"


def requests_of(loads: list[dict[str, Any]]) -> str:
    return "/".join(str(load["requests"]) for load in loads)


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def line(label: str, text: str) -> None:
    print(f"{label:<34} {text}".rstrip(), flush=True)


def compare(
    base_url: str,
    *,
    conversations: int,
    per_page: int,
    concurrency: int,
    runs: int,
    limit: float,
    label: str,
) -> Goal:
    """Alternate floor and load ``runs`` times, so that both see the same machine."""
    pages = -(-conversations // per_page) + 1  # the last page proves the end
    goal = Goal(label, limit, [], [])
    for _ in range(runs):
        goal.floors.append(download_only(base_url, pages, per_page))
        with tempfile.TemporaryDirectory() as directory:
            goal.loads.append(load_in_child(base_url, Path(directory), per_page, concurrency))
    goal.report()
    return goal


def incremental(base_url: str, per_page: int, concurrency: int) -> None:
    """A second run with nothing new: how many requests, how long."""
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        load_in_child(base_url, workdir, per_page, concurrency)
        again = [load_in_child(base_url, workdir, per_page, concurrency) for _ in range(3)]
    seconds = [load["seconds"] for load in again]
    # Page 1 reaches the cursor; page 2 proves the order across it (see reading.py).
    met = all(load["requests"] == 2 for load in again) and median(seconds) < 1.0
    line("incremental, nothing new", f"{pair(seconds)} s, {requests_of(again)} requests "
         f"(goal: 2 requests, < 1 s): {verdict(met)}")  # fmt: skip


def entry_points(latency_ms: float, runs: int, concurrency: int) -> None:
    """A first load through plain ``pipeline.run`` beside ``run_load``, alternating, on one
    account: conversations only (``runs`` times), then with messages (once: a load takes tens of
    seconds). A load of fewer rows than the other entry point's is not a faster load; the
    verdict says so instead."""
    line("entry points", f"{ENTRY_CONVERSATIONS} conversations, first loads, min/median")
    with sandbox_process(ENTRY_CONVERSATIONS, latency_ms) as base_url:
        for tables, times in ((CONVERSATIONS_ONLY, runs), (("conversations", "messages"), 1)):
            loads: dict[str, list[dict[str, Any]]] = {entry: [] for entry in ENTRY_POINTS}
            for _ in range(times):
                for entry in ENTRY_POINTS:
                    with tempfile.TemporaryDirectory() as directory:
                        loads[entry].append(
                            load_in_child(base_url, Path(directory), 100, concurrency,
                                          entry=entry, tables=tables)
                        )  # fmt: skip
            for entry, runs_of_entry in loads.items():
                wall = [load["seconds"] for load in runs_of_entry]
                cpu = [load["cpu_seconds"] for load in runs_of_entry]
                landed = {(load["rows"], load["messages"]) for load in runs_of_entry}
                line(f"  {entry}, {' + '.join(tables).replace('conversations', 'conv.')}",
                     f"wall {pair(wall)} s, CPU {pair(cpu)} s of {times}; "
                     f"(conversations, messages) {sorted(landed)}")  # fmt: skip
            report_entry_points(loads)


def report_entry_points(loads: dict[str, list[dict[str, Any]]]) -> None:
    """The verdict: plain ``pipeline.run`` no slower than ``run_load`` (median wall, 5 % for
    noise), having loaded as many rows."""
    runner, plain = (loads[entry] for entry in ENTRY_POINTS)
    complete = {(load["rows"], load["messages"]) for load in plain} == {
        (load["rows"], load["messages"]) for load in runner
    } and all(load["rows"] == ENTRY_CONVERSATIONS for load in runner + plain)
    ratio = median(load["seconds"] for load in plain) / median(load["seconds"] for load in runner)
    if not complete:
        line("", f"ratio {ratio:.2f}x, but the loads differ in rows: MISSED (not comparable)")
        return
    line("", f"pipeline.run / run_load {ratio:.2f}x (goal <= 1.05x): {verdict(ratio <= 1.05)}")


def messages() -> None:
    """The messages benchmark's own figures, when that benchmark exists."""
    if not MESSAGES_BENCH.exists():
        line("messages", "no messages_speed.py yet: skipped")
        return
    child = subprocess.run(
        [sys.executable, str(MESSAGES_BENCH)], check=False, capture_output=True, text=True
    )
    failed = child.returncode != 0
    line("messages (messages_speed.py)", f"FAILED, exit {child.returncode}:" if failed else "")
    output = child.stdout + (child.stderr[-2000:] if failed else "")
    for text in output.splitlines():
        print("  " + text, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3, help="floors and loads of each goal")
    parser.add_argument("--big", action="store_true", help="add the 1,000,000 case (slow)")
    parser.add_argument(
        "--concurrency", type=int, default=LOAD_CONCURRENCY, help="pages in flight of our loads"
    )
    parser.add_argument("--child-load", metavar="BASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--per-page", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--entry", choices=ENTRY_POINTS, default="run_load", help=argparse.SUPPRESS)
    parser.add_argument("--tables", default="conversations", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only-entry-points", action="store_true", help="run only the entry points' comparison"
    )
    parser.add_argument(
        "--only-speed", action="store_true", help="run only the two speed goals against the floor"
    )
    parser.add_argument(
        "--only-hostile-memory",
        action="store_true",
        help="run only the memory goal against pages just under the size cap",
    )
    args = parser.parse_args()
    if args.child_load:
        child_load(args.child_load, args.workdir, args.per_page, args.concurrency, args.entry,
                   args.tables)  # fmt: skip
        return

    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, dlt {dlt.__version__}"
    line("machine", f"{machine}, load concurrency {args.concurrency}")
    floor = f"download only over {FLOOR_CONNECTIONS} connections"
    sandbox = f"{args.conversations} conversations, {args.latency_ms:g} ms latency"
    if args.only_entry_points:
        entry_points(args.latency_ms, args.runs, args.concurrency)
        return
    if args.only_hostile_memory:
        hostile_memory.report(line)
        return
    line("sandbox", f"{sandbox}; floor: {floor}; min/median of {args.runs}")
    with sandbox_process(args.conversations, args.latency_ms) as base_url:
        for per_page, limit in ((100, 1.25), (1000, 2.5)):
            label = f"{args.conversations}, per_page {per_page}"
            compare(base_url, conversations=args.conversations, per_page=per_page, runs=args.runs,
                    concurrency=args.concurrency, limit=limit, label=label)  # fmt: skip
        if args.only_speed:
            return
        incremental(base_url, 100, args.concurrency)
    entry_points(args.latency_ms, args.runs, args.concurrency)
    messages()
    hostile_memory.report(line)
    if args.big:
        big = 1_000_000
        with sandbox_process(big, args.latency_ms) as base_url:
            goal = compare(base_url, conversations=big, per_page=100, runs=1, limit=1.15,
                           concurrency=args.concurrency, label=f"{big}, per_page 100")  # fmt: skip
        rss = max(load["peak_rss_mib"] for load in goal.loads)
        line("", f"peak RSS {rss:.0f} MiB (goal <= 400 MiB): {verdict(rss <= 400)}")


if __name__ == "__main__":
    main()
