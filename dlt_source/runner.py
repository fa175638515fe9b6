"""Runs the source in a dlt pipeline and sums the run up, for the CLI and the Airflow operator.

A first load with messages is several pipeline runs, one slice each (see
:mod:`octopush_dlt.backfill`); this module runs them until the backfill is complete, logging
progress, and then checks that the two tables agree for the conversations the run read.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.destination import TLoaderFileFormat
from dlt.common.pipeline import TRefreshMode
from dlt.common.schema.utils import has_table_seen_data
from dlt.extract.source import DltSource

from octopush_dlt.allocator import keep_few_malloc_arenas
from octopush_dlt.cursor import stored_cursor
from octopush_dlt.deletions import DeletionPolicy, check_complete, mark_deleted
from octopush_dlt.destinations import duckdb_held_open
from octopush_dlt.entry_points import runner_driving
from octopush_dlt.messages import conversations_read
from octopush_dlt.progress import duration, estimate, watching_steps
from octopush_dlt.receipts import ReceiptFigures
from octopush_dlt.settings import (
    MAX_SLICES,
    MESSAGES_RESOURCE_NAME,
    MESSAGES_TABLE_NAME,
    NAMED_IN_LOG,
    PRIMARY_KEY,
    RESOURCE_NAME,
    SLICE_CONVERSATIONS,
    SOURCE_NAME,
    TABLE_NAME,
)
from octopush_provider.exceptions import OctopushError

logger = logging.getLogger(__name__)

_SUMMED = (
    "new",
    "updated",
    "unchanged",
    "future",
    "pages",
    "requests",
    "retries",
    "elapsed_seconds",
)
_MESSAGES_SUMMED = ("conversations", "messages", "requests")
_CHECK_CHUNK = 1000  # ids per consistency query: bounded statements, few round trips
# Where the words of the summary are explained, each under its own heading.
TERMS = "docs/summary.md"


def _term(anchor: str) -> str:
    return f"({TERMS}#{anchor})"


def _count(number: int, word: str, plural: str | None = None) -> str:
    """``1 page``, ``50 pages``."""
    return f"{number} {word if number == 1 else plural or word + 's'}"


@dataclass(frozen=True, kw_only=True)
class MessagesSummary:
    """What one run did to the ``messages`` table."""

    table: str
    conversations_read: int
    messages_loaded: int
    requests: int
    kept_apart: int
    disagreeing: int
    receipts: ReceiptFigures = field(default_factory=ReceiptFigures)

    def lines(self) -> list[str]:
        lines = [
            f"  messages: {self.messages_loaded} from "
            f"{_count(self.conversations_read, 'conversation')} "
            f"({_count(self.requests, 'request')})"
        ]
        if self.kept_apart:
            lines.append(
                f"  kept apart: {_count(self.kept_apart, 'conversation')}, read again next run "
                f"{_term('kept-apart')}"
            )
        if self.disagreeing:
            lines.append(
                f"  tables disagree on {_count(self.disagreeing, 'conversation')} "
                f"{_term('disagree')}"
            )
        if self.receipts != ReceiptFigures():  # a line only when receipts were tracked
            lines.append(self.receipts.line())
        return lines


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
    duration_seconds: float
    slices: int = 1
    messages: MessagesSummary | None = None
    deletions: dict[str, Any] | None = None

    @property
    def conversations_loaded(self) -> int:
        """Distinct conversations loaded (a row read twice as the data moved counts once)."""
        return self.new + self.updated + self.unchanged + self.future

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"conversations_loaded": self.conversations_loaded}

    @property
    def nothing_new(self) -> bool:
        """Whether no conversation changed since the cursor and none was marked deleted (those
        re-read at the cursor, and their messages, are written again as they were)."""
        return self.new + self.updated + self.future == 0 and not (
            self.deletions and self.deletions["marked"]
        )

    def lines(self) -> list[str]:
        """A summary a person reads at a glance: short lines, one fact each; the words of ours
        point at their explanation (:data:`TERMS`)."""
        where = f"{self.destination}:{self.dataset_name}"
        took = duration(self.duration_seconds)
        if self.nothing_new:
            since = f"since {self.cursor}" if self.cursor else "(no conversation yet)"
            lines = [f"nothing new {since} in {where} (checked in {took})"]
        else:
            lines = [f"loaded into {where} in {took} (load id {self.load_id})"]
        future = f", {self.future} future-dated" if self.future else ""
        lines += [
            f"  conversations: {self.new} new, {self.updated} updated, {self.unchanged} "
            f"unchanged{future} {_term('conversations')}",
            f"  list: {_count(self.pages, 'page')}, {_count(self.requests, 'request')}, "
            f"{_count(self.retries, 'retry', 'retries')}; "
            f"stopped: {self.stop_reason}{'; re-read in order' if self.reread else ''} "
            f"{_term('list')}",
        ]
        lines += self.messages.lines() if self.messages else []
        lines.append(
            f"  cursor: {self.cursor or 'none yet'}"
            + (
                f"; ordering unreliable {_term('ordering-unreliable')}"
                if self.ordering_unreliable
                else ""
            )
        )
        if self.slices > 1:
            # Each slice reads the list and logs its own "read ended": the list line adds them up.
            lines.append(
                f"  first load: {self.slices} slices; the list line adds up their reads "
                f"{_term('slices')}"
            )
        return lines + self._deletion_lines()

    def _deletion_lines(self) -> list[str]:
        if self.deletions is None:
            return []
        found = self.deletions
        verb = "removed" if found["mode"] == "hard" else "flagged deleted"
        return [
            f"  deletions: {found['marked']} {verb}; {found['seen']} of {found['held']} "
            f"still listed {_term('deletions')}"
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


@contextmanager
def _malloc_for_arrow() -> Iterator[None]:
    """Arrow allocates with the C library's malloc during the load, unless told otherwise.

    Its default, mimalloc, keeps a heap per thread; with pages turned into Arrow on the client's
    worker threads, a 100k load peaked 40-50 MiB higher with it (``ARROW_DEFAULT_MEMORY_POOL``,
    when set, is left to decide). Each buffer returns to the pool it came from, so the default
    is restored after the load.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        yield
        return
    pool = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(pool)


def _resource_state(pipeline: dlt.Pipeline, resource: str) -> dict[str, Any]:
    sources = pipeline.state.get("sources", {})
    state: dict[str, Any] = sources.get(SOURCE_NAME, {}).get("resources", {}).get(resource, {})
    return state


def _disagreeing(pipeline: dlt.Pipeline, read: list[str]) -> list[str]:
    """The conversations of ``read`` whose ``number_of_messages`` differs from their rows in
    ``messages``, in order; one query per chunk of ids."""
    # A table dlt never saw a row of does not exist in the destination, hints or not.
    tables = pipeline.default_schema.tables
    seen = {name for name, table in tables.items() if has_table_seen_data(table)}
    if TABLE_NAME not in seen:  # nothing loaded yet: nothing can disagree
        return []
    has_messages = MESSAGES_TABLE_NAME in seen
    found: list[str] = []
    with pipeline.sql_client() as client:
        conversations = client.make_qualified_table_name(TABLE_NAME)
        messages = client.make_qualified_table_name(MESSAGES_TABLE_NAME)
        for start in range(0, len(read), _CHECK_CHUNK):
            chunk = read[start : start + _CHECK_CHUNK]
            ids = ", ".join(["%s"] * len(chunk))
            # No messages table yet (no message loaded so far): every conversation counts 0.
            joined, count = (
                (
                    f"LEFT JOIN (SELECT {PRIMARY_KEY}, count(*) AS n FROM {messages} "
                    f"WHERE {PRIMARY_KEY} IN ({ids}) GROUP BY {PRIMARY_KEY}) m "
                    f"ON m.{PRIMARY_KEY} = c.{PRIMARY_KEY}",
                    "coalesce(m.n, 0)",
                )
                if has_messages
                else ("", "0")
            )
            rows = client.execute_sql(
                f"SELECT c.{PRIMARY_KEY} FROM {conversations} c {joined} "
                f"WHERE c.{PRIMARY_KEY} IN ({ids}) AND {count} <> c.number_of_messages "
                f"ORDER BY c.{PRIMARY_KEY}",
                *(chunk * 2 if has_messages else chunk),
            )
            found += [cid for (cid,) in rows or []]
    return found


class _Agreement:
    """The consistency check of a run: the conversations whose messages it read, checked after
    each slice, so that only those that disagree then wait for the end, not every id a first
    load of a large account reads."""

    def __init__(self) -> None:
        self.read = 0
        self._suspects: dict[str, None] = {}

    def check(self, pipeline: dlt.Pipeline, read: list[str]) -> None:
        self.read += len(read)
        self._suspects |= dict.fromkeys(_disagreeing(pipeline, read))

    def disagreeing(self, pipeline: dlt.Pipeline) -> int:
        """How many still disagree at the end (a later slice may have mended one), logged."""
        found = _disagreeing(pipeline, list(self._suspects)) if self._suspects else []
        if found:
            logger.warning(
                "Octopush: %d of the %d conversations read disagree with their messages, e.g. %s",
                len(found),
                self.read,
                ", ".join(found[:NAMED_IN_LOG]),
            )
        return len(found)


def _slice_progress(backfill: dict[str, Any], slices: int, started: float) -> None:
    elapsed = time.monotonic() - started
    done, known = backfill["done"], backfill["known"]
    rate = done / elapsed if elapsed else 0.0
    logger.info(
        "Octopush first load: slice %d committed, %s of %s conversations in %s, %.0f/s%s",
        slices,
        f"{done:,}",
        f"{known:,}",
        duration(elapsed),
        rate,
        estimate(done=done, due=known, rate=rate),
    )


def _file_format(pipeline: dlt.Pipeline) -> TLoaderFileFormat | None:
    """Parquet when the destination takes it, else dlt's choice.

    A destination may list parquet and take it only with an optional driver (Postgres without
    ADBC): its selector says what it takes today, and asked with no table's wish it warns of
    nothing, where asking for parquet would log dlt's warning for every table of every run.
    """
    caps = pipeline.destination.capabilities()
    supported = caps.supported_loader_file_formats
    if caps.loader_file_format_selector is not None:
        _, supported = caps.loader_file_format_selector(
            caps.preferred_loader_file_format, supported, table_schema={"name": TABLE_NAME}
        )
    return "parquet" if "parquet" in supported else None


def _sum(reads: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: sum(read.get(name, 0) for read in reads) for name in names}


def run_load(
    pipeline: dlt.Pipeline,
    source: DltSource,
    *,
    full_refresh: bool = False,
    slice_conversations: int | None = SLICE_CONVERSATIONS,
) -> LoadSummary:
    """Extract, normalise and load: ``pipeline.run(source)``, with comfort around it.

    A first load with messages is committed every ``slice_conversations`` conversations (None:
    in one run), one ``pipeline.run`` a slice, until the last; a slice size the source was
    built with wins. ``full_refresh`` drops the tables and cursor first. Parquet load files
    when the destination takes them: dlt then copies our Arrow tables straight into the
    warehouse instead of inserting row by row. After a source built with ``detect_deletes``,
    the conversations the list no longer returns are flagged or removed
    (:mod:`octopush_dlt.deletions`). A DuckDB file stays open from start to end
    (:func:`~octopush_dlt.destinations.duckdb_held_open`). While dlt normalises and loads, a
    progress line every few seconds says how far it got
    (:func:`~octopush_dlt.progress.watching_steps`).
    """
    started = time.monotonic()
    with (
        runner_driving(slice_conversations=slice_conversations),
        duckdb_held_open(pipeline),
        watching_steps(pipeline),
    ):
        summary = _run_held(pipeline, source, full_refresh=full_refresh, started=started)
    # The wall time of the whole run: closing the DuckDB file (its checkpoint) included.
    return replace(summary, duration_seconds=round(time.monotonic() - started, 3))


def _run_held(
    pipeline: dlt.Pipeline, source: DltSource, *, full_refresh: bool, started: float
) -> LoadSummary:
    file_format = _file_format(pipeline)
    refresh: TRefreshMode | None = "drop_sources" if full_refresh else None
    reads: list[dict[str, Any]] = []
    message_reads: list[dict[str, Any]] = []
    agreement = _Agreement()
    with_messages = MESSAGES_RESOURCE_NAME in source.selected_resources
    keep_few_malloc_arenas()
    for slices in range(1, MAX_SLICES + 1):
        with _rare_collections(), _malloc_for_arrow():
            info = pipeline.run(source, loader_file_format=file_format, refresh=refresh)  # type: ignore[arg-type]
        refresh = None
        read_ids = [cid for load_id in info.loads_ids for cid in conversations_read(load_id)]
        if with_messages and read_ids:
            agreement.check(pipeline, read_ids)
        state = _resource_state(pipeline, RESOURCE_NAME)
        read: dict[str, Any] = state.get("last_read", {})
        reads.append(read)
        message_read = _resource_state(pipeline, MESSAGES_RESOURCE_NAME).get("last_read", {})
        if message_read.get("load_id") == read.get("load_id"):
            message_reads.append(message_read)
        backfill = state.get("backfill")
        capped = read.get("stop_reason") == "max_pages"  # the next slice would read the same
        if not read.get("slice") or capped or backfill is None or backfill["complete"]:
            break
        _slice_progress(backfill, slices, started)
    else:
        raise OctopushError(
            f"the first load did not finish in {MAX_SLICES} slices: the account grows faster "
            "than it loads; raise slice_conversations"
        )
    last = reads[-1]
    cursor = stored_cursor(state)
    messages = None
    if with_messages:
        figures = _sum(message_reads, _MESSAGES_SUMMED)
        kept = _resource_state(pipeline, MESSAGES_RESOURCE_NAME).get("kept_apart", {})
        messages = MessagesSummary(
            table=MESSAGES_TABLE_NAME,
            conversations_read=figures["conversations"],
            messages_loaded=figures["messages"],
            requests=figures["requests"],
            kept_apart=len(kept),
            disagreeing=agreement.disagreeing(pipeline),
            receipts=ReceiptFigures.total(read.get("receipts", {}) for read in message_reads),
        )
    found = None
    if "deletions" in last:
        check_complete(last.get("stop_reason"))
        policy, listed_at = DeletionPolicy.from_record(last["deletions"])
        children = [(MESSAGES_TABLE_NAME, PRIMARY_KEY)]
        report = mark_deleted(
            pipeline,
            table=TABLE_NAME,
            key=PRIMARY_KEY,
            policy=policy,
            listed_at=listed_at,
            children=[child for child in children if child[0] in pipeline.default_schema.tables],
        )
        found = report.as_dict()
    totals = _sum(reads, _SUMMED)
    return LoadSummary(
        pipeline_name=pipeline.pipeline_name,
        destination=pipeline.destination.destination_name,
        dataset_name=pipeline.dataset_name,
        table=TABLE_NAME,
        load_id=info.loads_ids[-1] if info.loads_ids else None,
        new=totals["new"],
        updated=totals["updated"],
        unchanged=totals["unchanged"],
        future=totals["future"],
        pages=totals["pages"],
        requests=totals["requests"],
        retries=totals["retries"],
        reread=any(read.get("reread", False) for read in reads),
        stop_reason=last.get("stop_reason"),
        cursor=cursor.isoformat() if cursor else None,
        ordering_unreliable=state.get("ordering_unreliable", False),
        read_seconds=totals["elapsed_seconds"],
        duration_seconds=0.0,  # run_load times the whole run, closing the file included
        slices=slices,
        messages=messages,
        deletions=found,
    )
