"""Benchmark: a first load of conversations and messages vs a download-only floor, into DuckDB.

Starts the sandbox in its own process (so that serving does not share our interpreter) with
5,000 conversations and 20 ms of latency per request, then times, in one run:

- download only: the same requests a first load makes (every list page, then one messages
  request per conversation), over 8 connections, bodies read and dropped;
- ours: ``octopush_source`` (both tables) through ``run_load``, with its request count;
- ours, incremental: after new messages in ``--changed`` conversations, the requests per changed
  conversation (on an in-process sandbox: only the counts matter there);
- receipts: requests per run to land delivery statuses, tracked against a blanket day-long lag
  (``receipts_cost.py``, on the same number of conversations).

Prints figures; asserts nothing. ``python tests/benchmarks/messages_speed.py --help``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
# Run as a script (make bench runs it from load_speed.py), the repository root is not on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import dlt
import requests

from octopush_dlt import octopush_source
from octopush_dlt.runner import LoadSummary, run_load
from octopush_provider.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_LOGIN,
    ConversationStore,
    SandboxServer,
)
from tests.benchmarks.load_speed import sandbox_process
from tests.benchmarks.receipts_cost import compare as receipts_cost

HEADERS = {"api-login": DEFAULT_API_LOGIN, "api-key": DEFAULT_API_KEY}
PER_PAGE = 100
CONNECTIONS = 8


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def line(label: str, value: str, note: str = "") -> None:
    print(f"{label:<36} {value:>9}  {note}".rstrip(), flush=True)


def download_only(base_url: str) -> int:
    """The requests of a first load, bodies dropped: every list page, then every conversation's
    messages, over ``CONNECTIONS`` keep-alive connections; returns the requests made."""
    sessions = [requests.Session() for _ in range(CONNECTIONS)]

    def get(index: int, path: str, params: dict[str, Any]) -> list[Any]:
        response = sessions[index % CONNECTIONS].get(
            f"{base_url}/{path}", params=params, headers=HEADERS, timeout=30
        )
        response.raise_for_status()
        body: list[Any] = response.json()
        return body

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        ids: list[str] = []
        page, pages = 1, 0
        while True:  # bounded: the sandbox ends the list with an empty page
            batch = list(
                pool.map(
                    lambda n: get(n, "conversations/list", {"page": n, "per_page": PER_PAGE}),
                    range(page, page + CONNECTIONS),
                )
            )
            pages += len(batch)
            ids += [row["conversation_id"] for rows in batch for row in rows]
            if not all(batch):
                break
            page += CONNECTIONS
        params = [{"conversation_id": f"cid_{cid}", "per_page": PER_PAGE} for cid in ids]
        list(
            pool.map(
                lambda item: get(item[0], "conversations/messages/list", item[1]),
                enumerate(params),
            )
        )
    return pages + len(ids)


def ours(base_url: str, workdir: Path, **options: Any) -> LoadSummary:
    pipeline = dlt.pipeline(
        "bench_messages",
        destination=dlt.destinations.duckdb(str(workdir / "ours.duckdb")),
        dataset_name="octopush",
        pipelines_dir=str(workdir / "pipelines"),
    )
    source = octopush_source(
        api_login=DEFAULT_API_LOGIN, api_key=DEFAULT_API_KEY, base_url=base_url, **options
    )
    return run_load(pipeline, source)


def incremental(conversations: int, changed: int, workdir: Path) -> tuple[int, int]:
    """List and messages requests of a run after ``changed`` conversations got a message."""
    with SandboxServer(ConversationStore.generate(conversations)) as sandbox:
        ours(sandbox.base_url, workdir, lag_seconds=0)
        sandbox.store.bump(changed)
        sandbox.clear_requests()
        ours(sandbox.base_url, workdir, lag_seconds=0)
        paths = [record.path for record in sandbox.requests]
    messages = sum("/messages/" in path for path in paths)
    return len(paths) - messages, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=5_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--changed", type=int, default=50)
    args = parser.parse_args()
    line("machine", f"{os.cpu_count()} cores", f"{args.conversations} conversations")
    with (
        sandbox_process(args.conversations, args.latency_ms) as base_url,
        tempfile.TemporaryDirectory() as workdir,
    ):
        floor, requests_made = timed(lambda: download_only(base_url))
        line("download only (floor)", f"{floor:.1f} s", f"{requests_made} requests")
        seconds, summary = timed(lambda: ours(base_url, Path(workdir), per_page=PER_PAGE))
        messages = summary.messages
        assert messages is not None
        line(
            "ours, first load, both tables",
            f"{seconds:.1f} s",
            f"{summary.requests + messages.requests} requests, {messages.messages_loaded} "
            f"messages, {seconds / floor:.2f}x the floor",
        )
    with tempfile.TemporaryDirectory() as workdir:
        lists, message_requests = incremental(args.conversations, args.changed, Path(workdir))
    line(
        f"ours, incremental, {args.changed} changed",
        f"{message_requests / args.changed:.2f}",
        f"messages requests per changed conversation (+{lists} list requests)",
    )
    with tempfile.TemporaryDirectory() as workdir:
        receipts_cost(args.conversations, hours=96, traffic=20, workdir=Path(workdir))


if __name__ == "__main__":
    main()
