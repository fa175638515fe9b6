"""Benchmark: what landing delivery receipts costs, tracked against a blanket day-long lag.

Three copies of the same sandbox account (same seed, same traffic), each loaded into DuckDB by
``run_load`` after a first load, once an hour for ``--hours`` hours. Each hour the sandbox's
clock moves on an hour (the receipts due arrive: most within a minute, the rest within twelve
hours, a fifth never) and ``--traffic`` conversations get an outbound message. One pipeline
tracks the conversations waiting for receipts (the default: ``lag_seconds`` 300, a three-day
window), one the same with a window of a day, and the last turns tracking off and re-reads a day
(``lag_seconds`` 86400), as the README advised before. For each: messages requests per run,
and after the last run how many statuses in the warehouse are behind the sandbox's.

Prints figures; asserts nothing. ``make bench`` runs it from ``messages_speed.py``; alone, from the
repository root: ``python -m tests.benchmarks.receipts_cost --help``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt

from octopush_dlt import octopush_source
from octopush_dlt.runner import run_load
from octopush_provider.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_LOGIN,
    ConversationStore,
    SandboxServer,
)
from octopush_provider.sandbox.server import MESSAGES_PATH

HOUR = 3_600
STRATEGIES: dict[str, dict[str, Any]] = {
    "receipts tracked (lag 300 s)": {},
    "tracked, window of a day": {"receipts_window_seconds": 86_400},
    "blanket lag of a day": {"lag_seconds": 86_400, "receipts_window_seconds": 0},
}


@dataclass
class Account:
    """One copy of the account and its pipeline, and what each hourly run cost."""

    sandbox: SandboxServer
    pipeline: dlt.Pipeline
    options: dict[str, Any]
    requests: list[int] = field(default_factory=list)

    def load(self) -> int:
        """One run; the messages requests it sent."""
        self.sandbox.clear_requests()
        source = octopush_source(
            api_login=DEFAULT_API_LOGIN,
            api_key=DEFAULT_API_KEY,
            base_url=self.sandbox.base_url,
            **self.options,
        )
        run_load(self.pipeline, source)
        return sum(record.path.startswith(MESSAGES_PATH) for record in self.sandbox.requests)

    def behind(self) -> int:
        """Statuses in the warehouse that differ from the sandbox's now."""
        store = self.sandbox.store
        now = {
            message["message_id"]: message["delivery_status"]
            for row in store.snapshot()
            for message in store.messages(row["conversation_id"]) or []
        }
        with self.pipeline.sql_client() as client:
            rows = client.execute_sql("SELECT message_id, delivery_status FROM messages")
        return sum(now.get(mid) != status for mid, status in rows)


def compare(conversations: int, *, hours: int, traffic: int, workdir: Path) -> None:
    """Load every copy hourly and print what each cost."""
    accounts = []
    for number, options in enumerate(STRATEGIES.values()):
        sandbox = SandboxServer(ConversationStore.generate(conversations)).start()
        pipeline = dlt.pipeline(
            f"bench_receipts_{number}",
            destination=dlt.destinations.duckdb(str(workdir / f"receipts_{number}.duckdb")),
            dataset_name="octopush",
            pipelines_dir=str(workdir / "pipelines"),
        )
        accounts.append(Account(sandbox, pipeline, options))
    try:
        for account in accounts:
            account.load()  # the first load, not counted
        for _ in range(hours):
            for account in accounts:  # the same moves on every copy: same seed, in step
                account.sandbox.store.advance(HOUR)
                account.sandbox.store.add_new(traffic // 2)
                account.sandbox.store.bump(traffic - traffic // 2)
                account.requests.append(account.load())
        print(
            f"receipts: {conversations} conversations, one run an hour for {hours} h (the "
            f"window is 72 h), {traffic} conversations with a new message an hour",
            flush=True,
        )
        for label, account in zip(STRATEGIES, accounts, strict=True):
            last_day = account.requests[-24:]
            print(
                f"  {label:<30} {mean(account.requests):6.1f} messages requests per run "
                f"(min {min(account.requests)}, max {max(account.requests)}; "
                f"{mean(last_day):.1f} over the last {len(last_day)} runs); "
                f"{account.behind()} statuses behind after the last run",
                flush=True,
            )
    finally:
        for account in accounts:
            account.sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=5_000)
    parser.add_argument("--hours", type=int, default=96, help="runs, one an hour")
    parser.add_argument("--traffic", type=int, default=20, help="conversations changed an hour")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        compare(args.conversations, hours=args.hours, traffic=args.traffic, workdir=Path(workdir))


if __name__ == "__main__":
    main()
