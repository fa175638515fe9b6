"""Where a DuckDB warehouse goes: one rule for the command line and the Airflow operator."""

from __future__ import annotations

from pathlib import Path

from octopush_provider.exceptions import OctopushConfigError


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
