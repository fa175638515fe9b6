"""Where a DuckDB warehouse goes and how it is opened: one rule for the CLI and the operator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration.specs.exceptions import NativeValueError
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.destinations.impl.postgres.configuration import PostgresCredentials

from octopush_provider.exceptions import OctopushConfigError

# DuckDB takes up to 80 % of the machine's memory by default, and the merge at the end of a load
# used it: +340 MiB at 1M conversations. Bounded, it spills to a folder beside the file instead,
# so the memory of a load does not grow with the account. Measured: peak RSS of a 1M load 447
# MiB at 256MB, 401 MiB at 128MB; at 300k, 64MB takes 10 MiB less than 128MB in the same time.
# One thread: DuckDB's memory grows with its threads, and the load is a small part of a run.
DUCKDB_LOAD_SETTINGS: dict[str, Any] = {"memory_limit": "64MB", "threads": 1}
DUCKDB_DESTINATION_TYPE = "dlt.destinations.duckdb"


def duckdb_file(path: str, *, dataset_name: str) -> str:
    """The DuckDB database path, with its folder created: DuckDB won't create folders."""
    if "://" in path or path.startswith(":"):
        return path
    file = Path(path).expanduser()
    # DuckDB names the catalog after the file: a schema of the same name makes every
    # schema-qualified name ambiguous, and the load fails with a binder error.
    if file.stem == dataset_name:
        raise OctopushConfigError(
            f"the DuckDB file {str(file)!r} is named like the dataset {dataset_name!r}, which "
            "DuckDB can't tell apart: rename the file or choose another dataset name"
        )
    file.parent.mkdir(parents=True, exist_ok=True)
    return str(file)


def duckdb_credentials(path: str, *, dataset_name: str) -> DuckDbCredentials:
    """Credentials of the DuckDB file at ``path`` (see :func:`duckdb_file`), memory bounded."""
    return DuckDbCredentials(
        duckdb_file(path, dataset_name=dataset_name), global_config=DUCKDB_LOAD_SETTINGS
    )


def postgres_credentials(url: str) -> PostgresCredentials:
    """Credentials of a Postgres URL; one without a password gets an empty one.

    dlt insists on a password, but trust, peer and certificate authentication have none; libpq
    takes an empty password as none (and then looks in ~/.pgpass).
    """
    credentials = PostgresCredentials()
    try:
        credentials.parse_native_representation(url)
    except NativeValueError as error:
        raise OctopushConfigError(
            f"the postgres destination's credentials are not a URL: {error}"
        ) from error
    if credentials.password is None:
        credentials.password = ""
    return credentials


@contextmanager
def duckdb_held_open(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Keep the pipeline's DuckDB file open until the block ends; other destinations: nothing.

    DuckDB keeps one database per file while any connection to it is open. dlt opens and closes
    a connection for each step of a run (five in a load), so each open reads the file again and
    each close writes a checkpoint. With one connection held, dlt's join the open database and
    the file is checkpointed once, at the end. Other processes are then locked out for the
    whole block rather than for each step (one that opened the file between two steps used to
    make the next step fail).
    """
    destination = pipeline.destination
    if destination is None or destination.destination_type != DUCKDB_DESTINATION_TYPE:
        yield
        return
    with pipeline.destination_client():
        yield
