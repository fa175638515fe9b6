"""Benchmark: the memory of a load against a server whose every page is just under the size cap.

A hostile server, in a process of its own, answers 30 pages of 100 conversations (what
``per_page`` asks) whose ``last_message`` is 600 KB long: about 60 MB a page, just under the
default ``max_response_bytes`` of 64 MiB, 1.8 GB in all. The dlt source reads them in a child
process with the loads' concurrency, through dlt's extract and normalize steps (the pages are
read, turned into Arrow and written to the load package), and that process's peak RSS is
printed against the goal: under 1 GiB, whatever the server sends. Before pages read ahead were
bounded in bytes, 12 workers x 4 pages ahead held 3.3-3.7 GB.

The load step into DuckDB is left out: DuckDB's own memory, not the read's, and with the
64 MB limit the project sets (``octopush_dlt.destinations``) its merge cannot pin blocks of
600 KB values.

Run by ``load_speed.py`` (``make bench``); alone: ``python tests/benchmarks/hostile_memory.py``.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

PAGES = 30
PER_PAGE = 100
TEXT_BYTES = 600_000
GOAL_MIB = 1024


def serve() -> None:
    """Serve the pages on a free loopback port; print its base URL, then serve until killed."""
    from octopush_provider.sandbox import ConversationStore

    rows = ConversationStore.generate(PAGES * PER_PAGE, seed=11).snapshot()
    text = "x" * TEXT_BYTES

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            page = int(parse_qs(urlsplit(self.path).query).get("page", ["1"])[0])
            chosen = rows[(page - 1) * PER_PAGE : page * PER_PAGE] if page >= 1 else []
            body = orjson.dumps([row | {"last_message": text} for row in chosen])
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"serving http://127.0.0.1:{server.server_address[1]}/v1/public", flush=True)
    server.serve_forever()


@contextmanager
def server_process() -> Iterator[str]:
    """Run :func:`serve` in a process of its own and yield its base URL."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=30)


def child(base_url: str, workdir: Path) -> None:
    """Extract and normalize the hostile pages; print the figures as JSON."""
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt

    from octopush_dlt import octopush_source
    from octopush_provider.settings import LOAD_CONCURRENCY

    pipeline = dlt.pipeline(
        "bench_hostile",
        destination="duckdb",
        dataset_name="octopush",
        pipelines_dir=str(workdir / "pipelines"),
    )
    source = octopush_source(
        api_login="bench@example.com",
        api_key="bench-key",
        base_url=base_url,
        per_page=PER_PAGE,
        resources=["conversations"],
        concurrency=LOAD_CONCURRENCY,
    )
    started = time.perf_counter()
    pipeline.extract(source, loader_file_format="parquet")
    info = pipeline.normalize()
    rows = info.row_counts.get("conversations", 0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mib": peak}))


# dlt's extract writer holds 5,000 rows before it writes them, whatever their size: 3 GB of
# these rows. The second run shows the read's own figure, with the writer told to hold fewer.
WRITER_VARIANTS = {
    "dlt's default writer buffer": {},
    "buffer_max_items=100": {
        "DATA_WRITER__BUFFER_MAX_ITEMS": "100",
        "EXTRACT__DATA_WRITER__BUFFER_MAX_ITEMS": "100",
    },
}


def report(line: Callable[[str, str], None]) -> None:
    """Read the hostile pages in a child process per variant; print the figures with ``line``."""
    line(f"pages just under the cap ({PAGES} x ~60 MB)", "extracted and normalized")
    with server_process() as base_url:
        for label, environment in WRITER_VARIANTS.items():
            with tempfile.TemporaryDirectory() as directory:
                done = subprocess.run(
                    [sys.executable, __file__, "--child", base_url, "--workdir", directory],
                    check=False,
                    capture_output=True,
                    text=True,
                    env=os.environ | environment,
                )
            if done.returncode != 0:
                line(f"  {label}", f"FAILED, exit {done.returncode}: {done.stderr[-1500:]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rss = result["peak_rss_mib"]
            met = "MET" if rss < GOAL_MIB else "MISSED"
            line(
                f"  {label}",
                f"{result['rows']} rows in {result['seconds']:.1f}s, peak RSS {rss:.0f} MiB "
                f"(goal < {GOAL_MIB} MiB): {met}",
            )


def _line(label: str, text: str) -> None:
    print(f"{label:<34} {text}".rstrip(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", metavar="BASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
    elif args.child:
        child(args.child, args.workdir)
    else:
        report(_line)


if __name__ == "__main__":
    main()
