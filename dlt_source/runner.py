"""Runs the source in a dlt pipeline and sums the run up, for the CLI and the Airflow operator."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import dlt
from dlt.common.destination import TLoaderFileFormat
from dlt.common.pipeline import TRefreshMode
from dlt.extract.source import DltSource

from octopush_dlt.cursor import stored_cursor
from octopush_dlt.settings import RESOURCE_NAME, SOURCE_NAME, TABLE_NAME


@dataclass(frozen=True, kw_only=True)
class LoadSummary:
    """What one run did; JSON-safe through :meth:`as_dict`, and never holds rows or secrets."""

    pipeline_name: str
    destination: str
    dataset_name: str
    table: str
    load_id: str | None
    new: int
    updated: int
    unchanged: int
    future: int
    pages: int
    requests: int
    retries: int
    reread: bool
    stop_reason: str | None
    cursor: str | None
    ordering_unreliable: bool
    read_seconds: float

    @property
    def conversations_loaded(self) -> int:
        """Distinct conversations loaded (a row read twice as the data moved counts once)."""
        return self.new + self.updated + self.unchanged + self.future

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"conversations_loaded": self.conversations_loaded}

    def lines(self) -> list[str]:
        """A human summary, one fact a line."""
        return [
            f"loaded {self.conversations_loaded} conversations into "
            f"{self.destination}:{self.dataset_name}.{self.table} (load id {self.load_id})",
            f"  new {self.new}, updated {self.updated}, re-read unchanged {self.unchanged}"
            + (
                f", {self.future} with a last_message_at in the future (not the cursor)"
                if self.future
                else ""
            ),
            f"  read {self.pages} pages with {self.requests} requests ({self.retries} retries) "
            f"in {self.read_seconds:.1f}s; stopped: {self.stop_reason}"
            + ("; re-read in order after the data moved" if self.reread else ""),
            f"  cursor (last_message_at, UTC): {self.cursor}"
            + (
                "; ordering unreliable, every run reads all pages"
                if self.ordering_unreliable
                else ""
            ),
        ]


# A load makes millions of short-lived objects and almost no reference cycles: with Python's
# default of a collection every 700 allocations, the collector ran ~800 times a 100k load and
# re-scanned everything dlt and Airflow had imported each time.
GC_GEN0_THRESHOLD = 50_000


@contextmanager
def _rare_collections() -> Iterator[None]:
    """Freeze what exists before the load out of the collector's sight; collect less often."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _resource_state(pipeline: dlt.Pipeline) -> dict[str, Any]:
    sources = pipeline.state.get("sources", {})
    state: dict[str, Any] = sources.get(SOURCE_NAME, {}).get("resources", {}).get(RESOURCE_NAME, {})
    return state


def run_load(
    pipeline: dlt.Pipeline, source: DltSource, *, full_refresh: bool = False
) -> LoadSummary:
    """Extract, normalise and load; ``full_refresh`` drops the table and cursor first.

    Parquet load files when the destination takes them: dlt then copies our Arrow tables
    straight into the warehouse instead of inserting row by row.
    """
    caps = pipeline.destination.capabilities()
    file_format: TLoaderFileFormat | None = (
        "parquet" if "parquet" in caps.supported_loader_file_formats else None
    )
    refresh: TRefreshMode | None = "drop_sources" if full_refresh else None
    with _rare_collections():
        info = pipeline.run(source, loader_file_format=file_format, refresh=refresh)  # type: ignore[arg-type]
    state = _resource_state(pipeline)
    read: dict[str, Any] = state.get("last_read", {})
    cursor = stored_cursor(state)
    summary = LoadSummary(
        pipeline_name=pipeline.pipeline_name,
        destination=pipeline.destination.destination_name,
        dataset_name=pipeline.dataset_name,
        table=TABLE_NAME,
        load_id=info.loads_ids[-1] if info.loads_ids else None,
        new=read.get("new", 0),
        updated=read.get("updated", 0),
        unchanged=read.get("unchanged", 0),
        future=read.get("future", 0),
        pages=read.get("pages", 0),
        requests=read.get("requests", 0),
        retries=read.get("retries", 0),
        reread=read.get("reread", False),
        stop_reason=read.get("stop_reason"),
        cursor=cursor.isoformat() if cursor else None,
        ordering_unreliable=state.get("ordering_unreliable", False),
        read_seconds=read.get("elapsed_seconds", 0.0),
    )
    return summary
