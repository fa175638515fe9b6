"""A local BigQuery for the tests: bqemulator (BigQuery's REST API over DuckDB) in a subprocess.

The tests start it themselves; nothing reaches Google and no credential is needed. Clients find
it the way Google's own client looks for an emulator, through ``BIGQUERY_EMULATOR_HOST``, with a
placeholder token. What bqemulator 1.4.0 needs that real BigQuery does not lives in the tests,
not in the product:

- it loads DuckDB's ``spatial`` extension at start, which would be downloaded and cannot be
  here; without it only GEOGRAPHY is lost, which no table of ours has, so that step is skipped;
- it does not gunzip uploaded load files: dlt's compression of its jsonl files (dlt's own
  tables, such as the pipeline state) must be off (``DATA_WRITER__DISABLE_COMPRESSION``);
- it uses numpy without declaring it; numpy comes here with dlt's ``bigquery`` extra (pandas);
- it cannot add several columns in one ``ALTER TABLE``: dlt is told to add them one by one;
- it resolves no table name against the default dataset: the tests' queries qualify names;
- after a dlt transaction (a BigQuery session) its database refuses every later request: the
  tests that detect deletions each start an emulator of their own (``fresh_bigquery``);
- it runs in a process of its own, so that its DuckDB, gRPC and web server threads neither
  share the tests' interpreter nor outlive it.

Run as ``python -m tests.bigquery_emulator PORT`` to serve on ``127.0.0.1:PORT``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import requests

PROJECT = "octopush-emulated"
# Environment a load into the emulator needs beside BIGQUERY_EMULATOR_HOST (see above).
LOAD_ENVIRONMENT = {"DATA_WRITER__DISABLE_COMPRESSION": "true"}
STARTUP_SECONDS = 60.0
_REPOSITORY = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class BigQueryEmulator:
    """A running emulator: where it listens and which project it stands for."""

    host: str
    project: str = PROJECT

    @property
    def url(self) -> str:
        """The value of ``BIGQUERY_EMULATOR_HOST``: Google's client needs the scheme."""
        return f"http://{self.host}"

    def destination(self) -> Any:
        """dlt's BigQuery destination for the emulator, as a user of dlt would write it.

        dlt takes no anonymous Google credentials but takes an access token, which the emulator
        does not check. The host comes from ``BIGQUERY_EMULATOR_HOST`` in the environment.
        """
        from google.oauth2.credentials import Credentials  # noqa: PLC0415

        return dlt.destinations.bigquery(
            credentials=Credentials(token="emulator"),
            project_id=self.project,
            alter_add_multi_column=False,
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_serving(emulator: BigQueryEmulator, process: subprocess.Popen[bytes]) -> None:
    """Return once the emulator answers a dataset listing; fail after ``STARTUP_SECONDS``."""
    deadline = time.monotonic() + STARTUP_SECONDS
    listing = f"{emulator.url}/bigquery/v2/projects/{emulator.project}/datasets"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the BigQuery emulator exited at start (code {process.returncode})")
        try:
            if requests.get(listing, timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the BigQuery emulator did not answer within {STARTUP_SECONDS:.0f} s")


@contextmanager
def running_emulator() -> Iterator[BigQueryEmulator]:
    """Start an emulator in a subprocess, wait until it serves, and stop it at the end."""
    port = _free_port()
    emulator = BigQueryEmulator(host=f"127.0.0.1:{port}")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bigquery_emulator", str(port)], cwd=_REPOSITORY
    )
    try:
        _wait_until_serving(emulator, process)
        yield emulator
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def serve(port: int) -> None:
    """Serve an in-memory emulator on ``127.0.0.1:port`` until SIGTERM."""
    from bqemulator.config import LogLevel, PersistenceMode, Settings  # noqa: PLC0415
    from bqemulator.server import run_forever  # noqa: PLC0415
    from bqemulator.storage.engine import DuckDBEngine  # noqa: PLC0415

    DuckDBEngine._load_spatial = lambda self: None  # type: ignore[method-assign]
    settings = Settings(
        persistence_mode=PersistenceMode.EPHEMERAL,
        rest_host="127.0.0.1",
        rest_port=port,
        grpc_host="127.0.0.1",
        grpc_port=0,
        default_project_id=PROJECT,
        # The avro extension would be downloaded too; no load of ours uses Avro.
        enable_format_extensions=False,
        log_level=LogLevel.WARNING,
    )
    run_forever(settings)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
