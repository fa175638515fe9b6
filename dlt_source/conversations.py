"""The ``conversations`` resource: the list read newest-first, as Arrow tables, with its cursor.

Each run reads down from the top of the list to the lag before the cursor (a first load: to
the start date), in one of three ways: pages tabulated straight from their bodies (the fast
path), a slice of a first load (:mod:`octopush_dlt.backfill`), or a full read for a deletion
check (:mod:`octopush_dlt.deletions`). What the run may do follows dlt's hints for it
(:mod:`octopush_dlt.entry_points`). The cursor and the read's figures are kept in the
resource's state, committed with the load.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.destinations.adapters import bigquery_adapter
from dlt.extract.hints import TResourceHints
from dlt.extract.items import DataItemWithMeta
from dlt.extract.resource import DltResource

from octopush_dlt.arrow import ExtraTypes, column_hints, fast_table, to_table
from octopush_dlt.backfill import Backfill, json_bytes, read_slice
from octopush_dlt.batches import batches, counted
from octopush_dlt.cursor import ReadTally, store_cursor, stored_cursor
from octopush_dlt.deletions import (
    DELETION_HINTS,
    DeletionPolicy,
    full_read,
    held_ids,
    stamp_listed,
)
from octopush_dlt.entry_points import plan_run
from octopush_dlt.first_load import table_is_absent
from octopush_dlt.privacy import PrivacyPolicy
from octopush_dlt.progress import Progress
from octopush_dlt.reading import ReadGuard
from octopush_dlt.settings import (
    CURSOR_COLUMN,
    DEFAULT_CLOCK_SKEW_SECONDS,
    PRIMARY_KEY,
    RESOURCE_NAME,
    TABLE_NAME,
)
from octopush_dlt.tables import CONVERSATIONS
from octopush_dlt.writer import register_writer_defaults
from octopush_provider.client import OctopushClient
from octopush_provider.conversations import Conversation
from octopush_provider.exceptions import OctopushResponseError
from octopush_provider.page import Page, StopReason
from octopush_provider.paging import PageStream

__all__ = ["conversations_resource"]

logger = logging.getLogger(__name__)

_COLUMN_HINTS = column_hints(CONVERSATIONS)
# The newest version wins when moving data puts a conversation twice in one load.
_HINTS: TTableSchemaColumns = {
    **_COLUMN_HINTS,
    CURSOR_COLUMN: {**_COLUMN_HINTS[CURSOR_COLUMN], "dedup_sort": "desc"},
}


def _append_hints() -> TResourceHints:
    """Append this load; without dedup_sort, which dlt warns of when a table appends."""
    return dlt.mark.make_hints(
        write_disposition="append",
        columns={CURSOR_COLUMN: {**_HINTS[CURSOR_COLUMN], "dedup_sort": None}},
    )


def _table(
    batch: list[Page], guard: ReadGuard, *, coerced: Counter[str], extra_types: ExtraTypes
) -> pa.Table | None:
    """The rows of a batch at or after the guard's start, as one table (None: no such row).

    The pages the fast path took bring their tables; the rows of the others go the row-wise
    way, with the run's types for extra columns (null in the tables of the first).
    """
    tables = [guard.keep_table(page.table) for page in batch if page.table is not None]
    rows = [row for page in batch if page.table is None for row in page.rows]
    parsed = _rows_table(rows, guard, coerced=coerced, extra_types=extra_types) if rows else None
    if parsed is not None:
        tables.append(parsed)
    return pa.concat_tables(tables, promote_options="default") if tables else None


def _rows_table(
    rows: list[Conversation],
    guard: ReadGuard,
    *,
    coerced: Counter[str],
    extra_types: ExtraTypes,
) -> pa.Table | None:
    """Parsed rows at or after the guard's start, the row-wise way (None: no such row)."""
    kept = guard.keep(rows)
    return to_table(kept, CONVERSATIONS, coerced=coerced, extra_types=extra_types) if kept else None


def _conversations(
    client: OctopushClient,
    *,
    start_date: datetime | None,
    lag: float,
    clock_skew: float,
    max_pages: int | None,
    slice_conversations: int | None,
    privacy: PrivacyPolicy,
    deletions: DeletionPolicy | None,
) -> Iterator[pa.Table | DataItemWithMeta | list[Any]]:
    """Conversations changed since the last run, newest first, as Arrow tables.

    What the run loads follows dlt's hints for it (:mod:`octopush_dlt.entry_points`): a first
    load may go in slices (see :mod:`octopush_dlt.backfill`); ``replace`` reads every
    conversation. With ``deletions``, every conversation the list returns (see
    :mod:`octopush_dlt.deletions`).
    """
    plan = plan_run(slice_conversations=slice_conversations, detect_deletes=deletions is not None)
    register_writer_defaults(dlt.current.pipeline().pipeline_name)
    slice_size = plan.slice_size
    state = dlt.current.resource_state()
    horizon = datetime.now(UTC) + timedelta(seconds=clock_skew)
    previous = stored_cursor(state)
    privacy.check_state(dlt.current.source_state(), loaded=previous is not None)
    if previous is not None and previous > horizon:
        logger.warning(
            "The stored cursor %s is in the future (left by an earlier version): reading every "
            "page once to recover",
            previous.isoformat(),
        )
        previous = start_date = None
    saved = state.get("backfill")
    # A backfill starts with the very first load and goes on until its last slice is done.
    slicing = bool(slice_size) and (previous is None if saved is None else not saved["complete"])
    if deletions is not None and slicing:
        logger.warning("Deletion check skipped: the first load is still going in slices")
        deletions = None
    guard = ReadGuard(
        start=_read_start(
            previous=previous,
            start_date=start_date,
            lag=lag,
            everything=deletions is not None,
            replace=plan.replace,
        ),
        trust_order=not state.get("ordering_unreliable", False),
    )
    if not guard.trust_order:
        logger.warning("Octopush ordering failed in an earlier run: reading every page")
    # Every conversation of a slice is new to the table, wherever the cursor stands.
    tally = ReadTally(previous=None if slicing else previous, horizon=horizon, cursor=previous)
    coerced: Counter[str] = Counter()
    known = dlt.current.source_schema().tables.get(TABLE_NAME, {})
    extra_types = ExtraTypes(known.get("columns"))
    # Not with messages: the messages transformer would inherit the hints with the table. Not
    # when replacing either: the hint would turn the user's replace into an append.
    appendable = not (plan.with_messages or plan.replace)
    may_append = (lambda: table_is_absent(TABLE_NAME)) if appendable else (lambda: False)
    listed_at = datetime.now(UTC)
    should_stop = Progress("list", unit="conversations").counting_pages(guard.should_stop)
    tables: Iterable[pa.Table | None]
    if slicing and slice_size:
        # A slice picks rows from the whole list: they are parsed, not tabulated.
        stream = client.iter_pages(stop_when=should_stop, max_pages=max_pages)
        backfill = Backfill.from_state(saved) if saved else Backfill()
        rows = read_slice(stream, guard, backfill, size=slice_size)
        tables = (
            to_table(batch, CONVERSATIONS, coerced=coerced, extra_types=extra_types)
            for batch in batches(rows, rows=lambda _: 1, size=json_bytes)
        )
        state["backfill"] = backfill.as_state()
        if not backfill.complete:
            _say_slice_ended_short(backfill, under_runner=plan.under_runner)
    elif deletions is not None:
        # A deletion check reads parsed rows: it adds the rows moving data hid from the list.
        stream = client.iter_pages(stop_when=should_stop, max_pages=max_pages)
        tables = (
            _rows_table(
                [row for rows in batch for row in rows],
                guard,
                coerced=coerced,
                extra_types=extra_types,
            )
            for batch in batches(
                _full_read(stream, client, max_pages),
                rows=len,
                size=lambda rows: sum(map(json_bytes, rows)),
            )
        )
    else:
        stream = client.iter_pages(stop_when=should_stop, max_pages=max_pages, tabulate=fast_table)
        tables = (
            _table(batch, guard, coerced=coerced, extra_types=extra_types)
            for batch in batches(
                stream.pages(),
                rows=lambda page: len(page.rows),
                size=lambda page: page.size,
            )
        )
    yield from counted(
        tables,
        tally=tally,
        finish=lambda table: (
            privacy.apply(table)
            if deletions is None
            else stamp_listed(privacy.apply(table), listed_at)
        ),
        may_append=may_append,
        append_hints=_append_hints(),
    )
    if stream.report.stop_reason is StopReason.NO_CONVERSATIONS and previous is not None:
        _refuse_an_empty_account(client.url, previous)
    # A last, empty batch runs the messages transformer even when every row was filtered out,
    # so that it retries what it kept apart before. (An empty list: dlt writes nothing for it.)
    yield []
    _record_read(
        state,
        stream=stream,
        tally=tally,
        guard=guard,
        coerced=coerced,
        previous=previous,
        backfill=saved if not slicing else None,
        slicing=slicing,
    )
    if deletions is not None:
        state["last_read"]["deletions"] = deletions.record(listed_at=listed_at)


def _record_read(
    state: dict[str, Any],
    *,
    stream: PageStream,
    tally: ReadTally,
    guard: ReadGuard,
    coerced: Counter[str],
    previous: datetime | None,
    backfill: dict[str, Any] | None,
    slicing: bool,
) -> None:
    """What a read that ended leaves in the resource's state: the cursor, unless the read was
    capped; the backfill it completed (a read from the cursor takes every conversation the
    slices had left); and its figures, for the runner's summary."""
    for field, count in sorted(coerced.items()):
        logger.warning(
            "Octopush sent %d non-text values in the text field %r: kept as their JSON text",
            count,
            field,
        )
    if guard.order_failed:
        state["ordering_unreliable"] = True
    elif guard.disorder_seen:
        logger.info(
            "Octopush order held when the moved list was read again in order: later runs trust it"
        )
    if stream.report.stop_reason is StopReason.MAX_PAGES:
        # The pages past the cap were not read: a cursor moved past them would skip them for
        # good. Keep it where it was, so that a run without the cap reads them.
        logger.warning(
            "Octopush read capped by max_pages: the cursor stays at %s until a run reads on",
            previous.isoformat() if previous else "its start",
        )
    else:
        store_cursor(state, tally.cursor)
        if backfill is not None:
            state["backfill"] = {**backfill, "complete": True}
    state["last_read"] = {
        **stream.report.as_dict(),
        **tally.finish(),
        "slice": slicing,
        "load_id": dlt.current.load_package_state()["load_id"],
    }


def _refuse_an_empty_account(url: str, previous: datetime) -> None:
    """An account that held conversations and now has none is more likely a wrong URL or
    account than an empty one: fail, so that nothing moves, rather than load nothing."""
    raise OctopushResponseError(
        f"page 1 of {url} answered that the account has no conversation, but this pipeline "
        f"loaded conversations before (cursor {previous.isoformat()}): check base_url, the path "
        "and the credentials; if every conversation was really deleted, run a full refresh"
    )


def _read_start(
    *,
    previous: datetime | None,
    start_date: datetime | None,
    lag: float,
    everything: bool,
    replace: bool,
) -> datetime | None:
    """Where the read may stop: a deletion check reads, and reloads, the whole list; a first
    load or a table replaced, all since the start date; an incremental run, the lag before
    the cursor."""
    if everything:
        return None
    if previous is None or replace:
        return start_date
    return previous - timedelta(seconds=lag)


def _say_slice_ended_short(backfill: Backfill, *, under_runner: bool) -> None:
    """A slice ended the run before the end of the account: the runner goes on by itself, a
    plain ``pipeline.run`` must be called again, and is told so."""
    if under_runner:
        return
    remaining = backfill.known - backfill.done
    logger.warning(
        "Octopush first load: this run loaded a slice, %d of about %d conversations; about %d "
        "remain. Run the pipeline again to continue (octopush_dlt.run_load goes on by itself), "
        "or leave slice_conversations unset to load everything in one run",
        backfill.done,
        backfill.known,
        remaining,
    )
    dlt.current.resource_metrics()["conversations_remaining"] = remaining


def _full_read(
    stream: PageStream, client: OctopushClient, max_pages: int | None
) -> Iterable[list[Conversation]]:
    """The pages of the read, then what moving data hid from them (a deletion check)."""
    pipeline = dlt.current.pipeline()
    return full_read(
        stream,
        client=client,
        held=lambda: held_ids(pipeline, table=TABLE_NAME, key=PRIMARY_KEY),
        max_pages=max_pages,
    )


def conversations_resource(
    client: OctopushClient,
    *,
    start_date: datetime | None,
    lag: float,
    clock_skew: float = DEFAULT_CLOCK_SKEW_SECONDS,
    max_pages: int | None = None,
    slice_conversations: int | None = None,
    privacy: PrivacyPolicy | None = None,
    deletions: DeletionPolicy | None = None,
) -> DltResource:
    """The ``conversations`` resource bound to a client; it keeps its cursor in its state."""
    privacy = privacy or PrivacyPolicy()
    hints = privacy.hints(_HINTS) | (DELETION_HINTS if deletions else {})
    resource = dlt.resource(
        _conversations,
        name=RESOURCE_NAME,
        table_name=TABLE_NAME,
        primary_key=PRIMARY_KEY,
        write_disposition="merge",
        columns=hints,
    )(
        client,
        start_date=start_date,
        lag=lag,
        clock_skew=clock_skew,
        max_pages=max_pages,
        slice_conversations=slice_conversations,
        privacy=privacy,
        deletions=deletions,
    )
    # Only BigQuery reads these: daily partitions on the cursor, clustered by id, so that the
    # merge of each run touches only recent partitions.
    return bigquery_adapter(resource, partition=CURSOR_COLUMN, cluster=[PRIMARY_KEY])
