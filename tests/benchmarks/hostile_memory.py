"""Benchmark: the memory of a load against a server whose every page is just under the size cap.

A hostile server, in a process of its own, answers 30 pages of 100 conversations (what
``per_page`` asks) whose ``last_message`` is 600 KB long: about 60 MB a page, just under the
default ``max_response_bytes`` of 64 MiB, 1.8 GB in all. Each case runs in a child process with
the loads' concurrency, and that process's peak RSS (``getrusage``) is printed against the goal:
under 1 GiB, whatever the server sends. The cases: the bare client's read; dlt's extract and
normalize steps (pages read, turned into Arrow, written to the load package); the whole load
into Postgres (a process of its own, so the figure is the loading process's alone) through
``run_load`` and through a plain ``pipeline.run``; the whole load into a DuckDB file; and a
first load with messages through ``run_load`` (``octopush-load``'s way: the first load in
slices of up to 5,000 conversations, bounded in bytes too). The server answers the messages
endpoint with the sandbox's messages of each conversation, of ordinary size.

DuckDB holds the values of a row group it writes (up to 122,880 rows) in its own memory: with
the 64 MB limit the project sets (``octopush_dlt.destinations``) a commit of 600 KB values fails
("failed to pin block"), at 256 MB it fails after ~740 rows (RSS 750 MiB), and unbounded it took
~6 GB for these 1.8 GB. That case prints the failure; nothing on our side bounds it.

Run by ``load_speed.py`` (``make bench``, or alone with ``--only-hostile-memory``), or
``python tests/benchmarks/hostile_memory.py``.
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
from collections.abc import Callable, Iterable, Iterator
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
POSTGRES_URL = os.environ.get(
    "OCTOPUSH_BENCH_POSTGRES", "postgresql://postgres:postgres@127.0.0.1:5432/test"
)


def serve() -> None:
    """Serve the pages on a free loopback port; print its base URL, then serve until killed."""
    from octopush_provider.sandbox import ConversationStore
    from octopush_provider.settings import MESSAGES_PATH

    store = ConversationStore.generate(PAGES * PER_PAGE, seed=11)
    rows = store.snapshot()
    text = "x" * TEXT_BYTES

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            page = int(query.get("page", "1"))
            if url.path.endswith(MESSAGES_PATH):  # a conversation's messages, as the sandbox's
                wanted = query.get("conversation_id", "").removeprefix("cid_")
                size = int(query.get("per_page", PER_PAGE))
                chosen = (store.messages(wanted) or [])[(page - 1) * size : page * size]
                self._send(orjson.dumps(chosen if page >= 1 else []))
                return
            chosen = rows[(page - 1) * PER_PAGE : page * PER_PAGE] if page >= 1 else []
            self._send(orjson.dumps([row | {"last_message": text} for row in chosen]))

        def _send(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            """Quiet when a read that stopped early (caught up) drops its connections."""
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
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


def child(base_url: str, workdir: Path, entry: str) -> None:
    """Read the hostile pages through ``entry`` (one of ``ENTRIES``); print the figures as JSON."""
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt

    from octopush_dlt import octopush_source
    from octopush_dlt.destinations import duckdb_credentials, postgres_credentials
    from octopush_dlt.runner import run_load
    from octopush_provider.client import OctopushClient
    from octopush_provider.settings import LOAD_CONCURRENCY

    settings = {"api_login": "bench@example.com", "api_key": "bench-key", "base_url": base_url}
    settings |= {"per_page": PER_PAGE, "concurrency": LOAD_CONCURRENCY}
    into_postgres = entry.endswith("postgres")
    dataset = f"hostile_{os.getpid()}"
    credentials = (
        postgres_credentials(POSTGRES_URL)
        if into_postgres
        else duckdb_credentials(str(workdir / "hostile.duckdb"), dataset_name=dataset)
    )
    pipeline = dlt.pipeline(
        "bench_hostile",
        destination=dlt.destinations.postgres(credentials)
        if into_postgres
        else dlt.destinations.duckdb(credentials),
        dataset_name=dataset,
        pipelines_dir=str(workdir / "pipelines"),
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        if entry == "read":
            rows = sum(len(page) for page in OctopushClient(**settings).iter_pages())
        elif entry == "extract+normalize":
            pipeline.extract(octopush_source(**settings, resources=["conversations"]))
            rows = pipeline.normalize().row_counts.get("conversations", 0)
        elif entry == "run_load messages postgres":  # a first load in slices, as a user runs it
            run_load(pipeline, octopush_source(**settings))
            with pipeline.sql_client() as client:
                rows = int(client.execute_sql("SELECT count(*) FROM conversations")[0][0])
        else:
            source = octopush_source(**settings, resources=["conversations"])
            if entry.startswith("run_load"):
                run_load(pipeline, source)
            else:
                pipeline.run(source)
            with pipeline.sql_client() as client:
                rows = int(client.execute_sql("SELECT count(*) FROM conversations")[0][0])
    finally:
        if into_postgres:
            with pipeline.sql_client() as client:
                client.drop_dataset()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "cpu": cpu_seconds, "peak_rss_mib": peak}))


# The read alone (the client's pages, parsed and dropped); dlt's extract and normalize steps;
# then the whole load (extract, normalize, load) through each entry point a user has.
ENTRIES = {
    "read": "read alone (bare client)",
    "extract+normalize": "extract and normalize",
    "run_load postgres": "load to Postgres, run_load",
    "pipeline.run postgres": "load to Postgres, pipeline.run",
    "run_load duckdb": "load to DuckDB, run_load",
    "run_load messages postgres": "first load with messages, slices",
}


def report(line: Callable[[str, str], None], entries: Iterable[str] = ENTRIES) -> None:
    """Read the hostile pages in a child process per entry; print the figures with ``line``."""
    line(f"pages just under the cap ({PAGES} x ~60 MB)", f"goal: peak RSS < {GOAL_MIB} MiB")
    with server_process() as base_url:
        for entry in entries:
            label = ENTRIES[entry]
            with tempfile.TemporaryDirectory() as directory:
                done = subprocess.run(
                    [sys.executable, __file__, "--child", base_url, "--workdir", directory,
                     "--entry", entry],
                    check=False,
                    capture_output=True,
                    text=True,
                )  # fmt: skip
            if done.returncode != 0:
                errors = [text for text in done.stderr.splitlines() if "Error" in text]
                line(f"  {label}", f"FAILED: {(errors or ['exit ' + str(done.returncode)])[-1]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rss = result["peak_rss_mib"]
            line(
                f"  {label}",
                f"{result['rows']} rows in {result['seconds']:.1f}s ({result['cpu']:.1f}s CPU), "
                f"peak RSS {rss:.0f} MiB: {'MET' if rss < GOAL_MIB else 'MISSED'}",
            )


def _line(label: str, text: str) -> None:
    print(f"{label:<34} {text}".rstrip(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", metavar="BASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--entry", choices=ENTRIES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
    elif args.child:
        child(args.child, args.workdir, args.entry)
    else:
        report(_line)


if __name__ == "__main__":
    main()
