"""Benchmark: our source vs dlt's rest_api source vs a bare download, into DuckDB.

Starts the sandbox in its own process (so that serving does not share our interpreter) with
100,000 conversations and 20 ms of latency per request, then times, in one run:

- download only: every page fetched over 8 connections, bodies read and dropped;
- rest_api: the same endpoint on dlt's generic ``rest_api`` source as a well-informed user
  would set it up (page-number paginator, merge on the id, parquet load files);
- ours: ``octopush_source`` through ``run_load``;
- ours, incremental with nothing new: how many requests it makes;
- ours, peak memory (max RSS of a child process) at 10,000 and 100,000 conversations.

Prints figures; asserts nothing. ``python tests/benchmarks/load_speed.py --help``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt
import requests

from octopush_dlt import octopush_source
from octopush_dlt.runner import run_load
from octopush_provider.sandbox import DEFAULT_API_KEY, DEFAULT_API_LOGIN

HEADERS = {"api-login": DEFAULT_API_LOGIN, "api-key": DEFAULT_API_KEY}
PER_PAGE = 100


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


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def download_only(base_url: str, pages: int, per_page: int, connections: int = 8) -> int:
    """Fetch pages 1..pages over ``connections`` keep-alive connections; return the bytes."""
    sessions = [requests.Session() for _ in range(connections)]

    def fetch(page: int) -> int:
        session = sessions[page % connections]
        response = session.get(
            f"{base_url}/conversations/list",
            params={"page": page, "per_page": per_page},
            headers=HEADERS,
            timeout=30,
        )
        response.raise_for_status()
        return len(response.content)

    with ThreadPoolExecutor(connections) as pool:
        return sum(pool.map(fetch, range(1, pages + 1)))


def rest_api_pipeline_run(base_url: str, workdir: Path, per_page: int) -> int:
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {
                "base_url": base_url + "/",
                "headers": HEADERS,
                "paginator": {
                    "type": "page_number",
                    "base_page": 1,
                    "page_param": "page",
                    "total_path": None,
                    "stop_after_empty_page": True,
                },
            },
            "resource_defaults": {"primary_key": "conversation_id", "write_disposition": "merge"},
            "resources": [
                {
                    "name": "conversations",
                    "endpoint": {
                        "path": "conversations/list",
                        "params": {"per_page": per_page},
                        "data_selector": "$",
                        "incremental": {
                            "cursor_path": "last_message_at",
                            "initial_value": "1970-01-01T00:00:00+00:00",
                            "row_order": "desc",
                        },
                    },
                }
            ],
        }
    )
    pipeline = dlt.pipeline(
        "bench_rest_api",
        destination=dlt.destinations.duckdb(str(workdir / "rest_api.duckdb")),
        dataset_name="octopush",
        pipelines_dir=str(workdir / "pipelines"),
    )
    pipeline.run(source, loader_file_format="parquet")
    return count_rows(pipeline)


def ours_pipeline(workdir: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        "bench_ours",
        destination=dlt.destinations.duckdb(str(workdir / "ours.duckdb")),
        dataset_name="octopush",
        pipelines_dir=str(workdir / "pipelines"),
    )


def ours_run(base_url: str, workdir: Path, per_page: int = PER_PAGE) -> dict[str, Any]:
    pipeline = ours_pipeline(workdir)
    source = octopush_source(
        api_login=DEFAULT_API_LOGIN,
        api_key=DEFAULT_API_KEY,
        base_url=base_url,
        per_page=per_page,
        resources=["conversations"],  # the same table as rest_api's; messages_speed.py does both
    )
    summary = run_load(pipeline, source).as_dict()
    summary["rows_in_table"] = count_rows(pipeline)
    return summary


def count_rows(pipeline: dlt.Pipeline) -> int:
    with pipeline.sql_client() as client:
        return int(client.execute_sql("SELECT count(*) FROM conversations")[0][0])


def peak_memory_mib(conversations: int, latency_ms: float) -> float:
    """Max RSS of a child process that runs our full load alone."""
    child = subprocess.run(
        [
            sys.executable, __file__, "--child-ours",
            "--conversations", str(conversations), "--latency-ms", str(latency_ms),
        ],
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    return float(child.stdout.strip().splitlines()[-1])


def child_ours(conversations: int, latency_ms: float) -> None:
    with sandbox_process(conversations, latency_ms) as base_url, tempfile.TemporaryDirectory() as d:
        ours_run(base_url, Path(d))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def line(label: str, value: str, note: str = "") -> None:
    print(f"{label:<34} {value:>9}  {note}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--per-page", type=int, default=PER_PAGE, help="for every load alike")
    parser.add_argument("--skip-rest-api", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child-ours", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_ours:
        child_ours(args.conversations, args.latency_ms)
        return

    per_page = args.per_page
    pages = -(-args.conversations // per_page) + 1
    line(
        "machine",
        f"{os.cpu_count()} cores",
        f"Python {sys.version.split()[0]}, dlt {dlt.__version__}",
    )
    line("sandbox", f"{args.conversations}", f"conversations, {args.latency_ms:g} ms latency, "
         f"{per_page} per page, {pages} requests")  # fmt: skip
    with sandbox_process(args.conversations, args.latency_ms) as base_url:
        download, size = timed(lambda: download_only(base_url, pages, per_page))
        line("download only, 8 connections", f"{download:.2f} s", f"{size / 1e6:.0f} MB")
        with tempfile.TemporaryDirectory() as directory:
            workdir = Path(directory)
            rest_api = None
            if not args.skip_rest_api:
                rest_api, rows = timed(lambda: rest_api_pipeline_run(base_url, workdir, per_page))
                line("rest_api source, parquet", f"{rest_api:.2f} s", f"{rows} rows")
            ours, summary = timed(lambda: ours_run(base_url, workdir, per_page))
            line("ours (octopush_source)", f"{ours:.2f} s",
                 f"{summary['rows_in_table']} rows, {summary['requests']} requests")  # fmt: skip
            again, repeat = timed(lambda: ours_run(base_url, workdir, per_page))
            line("ours, incremental, nothing new", f"{again:.2f} s",
                 f"{repeat['requests']} request(s), {repeat['conversations_loaded']} rows "
                 "re-read in the lag window")  # fmt: skip
    line("ours / download only", f"{ours / download:.2f}x", "target <= 1.5")
    if rest_api is not None:
        line("ours / rest_api", f"{ours / rest_api:.2f}x", "target <= 0.2")
    if not args.skip_memory:
        for size in (10_000, args.conversations):
            mib = peak_memory_mib(size, args.latency_ms)
            line(f"peak RSS, ours, {size} conversations", f"{mib:.0f} MiB")


if __name__ == "__main__":
    main()
