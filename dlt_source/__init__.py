"""dlt source for Octopush conversations and their messages: exact, incremental and fast.

``octopush_source()`` reads its settings from the ``[sources.octopush]`` section of dlt's config
and secrets (or ``SOURCES__OCTOPUSH__API_KEY`` style environment variables), or takes a ready
:class:`~octopush_provider.client.OctopushClient`, which is how the Airflow operator hands over
its hook's.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import dlt
import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.common.typing import TSecretStrValue
from dlt.destinations.adapters import bigquery_adapter
from dlt.extract.hints import TResourceHints
from dlt.extract.items import DataItemWithMeta
from dlt.extract.resource import DltResource

from octopush_dlt.arrow import ExtraTypes, column_hints, fast_table, to_table
from octopush_dlt.backfill import Backfill, SliceSelector
from octopush_dlt.cursor import ReadTally, store_cursor, stored_cursor
from octopush_dlt.deletions import (
    DEFAULT_MIN_SHARE,
    DELETION_HINTS,
    DeletionPolicy,
    full_read,
    held_ids,
    stamp_listed,
)
from octopush_dlt.entry_points import check_slice_size, plan_run
from octopush_dlt.first_load import table_is_absent
from octopush_dlt.messages import messages_resource
from octopush_dlt.privacy import PrivacyPolicy
from octopush_dlt.reading import ReadGuard
from octopush_dlt.settings import (
    BATCH_ROWS,
    CURSOR_COLUMN,
    DEFAULT_CLOCK_SKEW_SECONDS,
    DEFAULT_LAG_SECONDS,
    MESSAGES_RESOURCE_NAME,
    PRIMARY_KEY,
    RESOURCE_NAME,
    SOURCE_NAME,
    TABLE_NAME,
)
from octopush_dlt.tables import CONVERSATIONS, MESSAGES, TABLES
from octopush_provider.client import OctopushClient
from octopush_provider.conversations import Conversation, to_utc
from octopush_provider.exceptions import OctopushConfigError
from octopush_provider.page import Page, StopReason
from octopush_provider.paging import PageStream
from octopush_provider.settings import (
    CONVERSATIONS_PATH,
    DEFAULT_BASE_URL,
    DEFAULT_PER_PAGE,
    LOAD_CONCURRENCY,
    MESSAGES_PATH,
)

__all__ = ["RESOURCES", "octopush_source"]

logger = logging.getLogger(__name__)

RESOURCES = (RESOURCE_NAME, MESSAGES_RESOURCE_NAME)

_Part = TypeVar("_Part")

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


def _batches(parts: Iterable[_Part], *, rows: Callable[[_Part], int]) -> Iterator[list[_Part]]:
    """Pages (or lists of rows) joined into batches of about ``BATCH_ROWS`` rows."""
    batch: list[_Part] = []
    count = 0
    for part in parts:
        batch.append(part)
        count += rows(part)
        if count >= BATCH_ROWS:
            yield batch
            batch, count = [], 0
    if batch:
        yield batch


def _table(
    batch: list[Page], guard: ReadGuard, *, coerced: Counter[str], extra_types: ExtraTypes
) -> pa.Table | None:
    """The rows of a batch at or after the guard's start, as one table (None: no such row).

    The pages the fast path took bring their tables; the rows of the others go the row-wise
    way, with the run's types for extra columns (null in the tables of the first).
    """
    tables = [guard.keep_table(page.table) for page in batch if page.table is not None]
    rows = [row for page in batch if page.table is None for row in page.conversations]
    parsed = _rows_table(rows, guard, coerced=coerced, extra_types=extra_types) if rows else None
    if parsed is not None:
        tables.append(parsed)
    return pa.concat_tables(tables, promote_options="default") if tables else None


def _counted(
    tables: Iterable[pa.Table | None],
    *,
    tally: ReadTally,
    finish: Callable[[pa.Table], pa.Table],
    may_append: Callable[[], bool],
) -> Iterator[pa.Table | DataItemWithMeta]:
    """Each table counted (before ``finish``, which may drop columns), then finished.

    One table is held back, so that the last one can carry the write disposition once the whole
    read is known: hints given with an item apply to the whole load of the table. Whether the
    load may append is asked when the first table arrives, before dlt has seen any: the question
    opens the destination, and the next pages download meanwhile.
    """
    held: pa.Table | None = None
    append: bool | None = None
    for table in tables:
        if table is not None and table.num_rows:
            if append is None:
                append = may_append()
            tally.add(table)
            if held is not None:
                yield held
            held = finish(table)
    if held is not None:
        appends = append and not tally.repeated
        yield dlt.mark.with_hints(held, _append_hints()) if appends else held


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
    tables: Iterable[pa.Table | None]
    if slicing and slice_size:
        # A slice picks rows from the whole list: they are parsed, not tabulated.
        stream = client.iter_pages(stop_when=guard.should_stop, max_pages=max_pages)
        backfill = Backfill.from_state(saved) if saved else Backfill()
        rows = _slice(stream, guard, backfill, size=slice_size)
        tables = (
            to_table(batch, CONVERSATIONS, coerced=coerced, extra_types=extra_types)
            for batch in (rows[at : at + BATCH_ROWS] for at in range(0, len(rows), BATCH_ROWS))
        )
        state["backfill"] = backfill.as_state()
        if not backfill.complete:
            _say_slice_ended_short(backfill, under_runner=plan.under_runner)
    elif deletions is not None:
        # A deletion check reads parsed rows: it adds the rows moving data hid from the list.
        stream = client.iter_pages(stop_when=guard.should_stop, max_pages=max_pages)
        tables = (
            _rows_table(
                [row for rows in batch for row in rows],
                guard,
                coerced=coerced,
                extra_types=extra_types,
            )
            for batch in _batches(_full_read(stream, client, max_pages), rows=len)
        )
    else:
        stream = client.iter_pages(
            stop_when=guard.should_stop, max_pages=max_pages, tabulate=fast_table
        )
        tables = (
            _table(batch, guard, coerced=coerced, extra_types=extra_types)
            for batch in _batches(stream.pages(), rows=lambda page: len(page.conversations))
        )
    yield from _counted(
        tables,
        tally=tally,
        finish=lambda table: (
            privacy.apply(table)
            if deletions is None
            else stamp_listed(privacy.apply(table), listed_at)
        ),
        may_append=may_append,
    )
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
    if guard.disorder_seen:
        state["ordering_unreliable"] = True
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


def _slice(
    stream: PageStream, guard: ReadGuard, backfill: Backfill, *, size: int
) -> list[Conversation]:
    """The conversations of one slice of a first load: the next ``size``, oldest first.

    Newest-first, every row a slice wants is newer than the guard's start (the start date, or
    the end of the slices done minus the lag): the read stops there, as an incremental one does.
    A read capped by ``max_pages`` did not reach the oldest conversations, on the pages past the
    cap: its rows are loaded, but neither the backfill nor the cursor moves past them.
    """
    selector = SliceSelector(after=backfill.done_upto, size=size)
    for page in stream:
        selector.offer(guard.keep(page))
    rows, complete = selector.take()
    if stream.report.stop_reason is StopReason.MAX_PAGES:
        return rows
    backfill.complete = complete
    backfill.done_upto = rows[-1][CURSOR_COLUMN] if rows else backfill.done_upto
    backfill.done += len(rows)
    backfill.known = backfill.done + selector.candidates - len(rows)
    return rows


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


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def octopush_source(
    *,
    api_login: str | None = dlt.secrets.value,
    api_key: str | None = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    conversations_path: str = CONVERSATIONS_PATH,
    messages_path: str = MESSAGES_PATH,
    resources: Sequence[str] = RESOURCES,
    slice_conversations: int | None = None,
    per_page: int = DEFAULT_PER_PAGE,
    concurrency: int = LOAD_CONCURRENCY,
    start_date: str | None = None,
    lag_seconds: float = DEFAULT_LAG_SECONDS,
    clock_skew_seconds: float = DEFAULT_CLOCK_SKEW_SECONDS,
    allow_insecure_http: bool = False,
    max_pages: int | None = None,
    hash_columns: list[str] | None = None,
    drop_columns: list[str] | None = None,
    hash_secret: TSecretStrValue | None = dlt.secrets.value,
    detect_deletes: bool = False,
    deletes_mode: str = "soft",
    deletes_min_share: float = DEFAULT_MIN_SHARE,
    client: Any = None,
) -> Any:
    """Octopush conversations, loaded incrementally on ``last_message_at``, and their messages.

    ``pipeline.run(octopush_source())`` loads the whole account in one run, and dlt's idioms on
    it hold (:mod:`octopush_dlt.entry_points`); :func:`octopush_dlt.runner.run_load` adds
    slices, checks and a summary around the same run.

    Args:
        api_login: The account's login (``[sources.octopush]`` in ``.dlt/secrets.toml``).
        api_key: The account's API key; never logged.
        base_url: The API's base URL.
        conversations_path: The list endpoint, under ``base_url``.
        messages_path: The messages endpoint, under ``base_url``.
        resources: The tables: ``conversations``, ``messages`` (read for the conversations read
            in the run, so it needs them), or both (the default). ``with_resources`` on the
            source selects the same way.
        slice_conversations: Commit a first load with messages every this many conversations,
            one run a slice. Unset (the default), one run loads everything; the runner slices
            by 5,000 by itself. A plain ``pipeline.run`` that a slice ends says how much
            remains at WARNING level.
        per_page: Conversations asked for per page.
        concurrency: Pages (and message reads) in flight at once.
        start_date: ISO 8601; the first load reads conversations active since then.
        lag_seconds: Re-read this much before the cursor on every run.
        clock_skew_seconds: A ``last_message_at`` further than this after the start of the run
            is in the future: loaded, but it never moves the cursor.
        allow_insecure_http: Allow an ``http://`` base URL (a local sandbox).
        max_pages: A safety cap on the pages one run reads: a capped run loads what it read but
            keeps the cursor, and the backfill of a first load, where they were.
        hash_columns: Columns replaced by their HMAC-SHA256 keyed by ``hash_secret``, in every
            table that has them, before dlt sees them (:mod:`octopush_dlt.privacy`).
        drop_columns: Columns removed from every table that has them.
        hash_secret: The HMAC key of ``hash_columns``.
        detect_deletes: Read the whole list, so that the runner flags (``deletes_mode="soft"``)
            or removes (``"hard"``, with their messages) the conversations it no longer returns
            (:mod:`octopush_dlt.deletions`). Marking happens after the load: under a plain
            ``pipeline.run`` the run is refused.
        deletes_mode: ``soft`` or ``hard``.
        deletes_min_share: Mark nothing when the list returns fewer than this share of the
            conversations the table holds.
        client: A configured :class:`OctopushClient` to reuse (the Airflow operator hands over
            its hook's); the credential and connection settings are then ignored.
    """
    chosen = _check_resources(resources)
    privacy = PrivacyPolicy.build(
        hash_columns=hash_columns,
        drop_columns=drop_columns,
        hash_secret=hash_secret,
        tables={table.name: table.schema.names for table in TABLES},
        protected=(PRIMARY_KEY, CURSOR_COLUMN, MESSAGES.primary_key),
    )
    deletions = (
        DeletionPolicy.build(mode=deletes_mode, min_share=deletes_min_share)
        if detect_deletes
        else None
    )
    if slice_conversations is not None:
        check_slice_size(slice_conversations)
    for name, seconds in (("lag_seconds", lag_seconds), ("clock_skew_seconds", clock_skew_seconds)):
        if seconds < 0:
            raise OctopushConfigError(f"{name} must be >= 0, got {seconds!r}")
    if max_pages is not None and (
        isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1
    ):
        raise OctopushConfigError(f"max_pages must be a whole number >= 1, got {max_pages!r}")
    try:
        start = to_utc(start_date) if start_date else None
    except ValueError as error:
        raise OctopushConfigError(
            f"start_date must be an ISO 8601 date and time: {error}"
        ) from None
    if client is None:
        missing = [
            name for name, value in (("api_login", api_login), ("api_key", api_key)) if not value
        ]
        if missing:
            raise OctopushConfigError(
                f"{' and '.join(missing)} missing: set them under [sources.octopush] in "
                ".dlt/secrets.toml, or as SOURCES__OCTOPUSH__API_LOGIN / SOURCES__OCTOPUSH__API_KEY"
            )
        client = OctopushClient(
            api_login=str(api_login),
            api_key=str(api_key),
            base_url=base_url,
            path=conversations_path,
            messages_path=messages_path,
            per_page=per_page,
            concurrency=concurrency,
            allow_insecure_http=allow_insecure_http,
            where="dlt config section [sources.octopush]",
        )
    elif not isinstance(client, OctopushClient):
        raise OctopushConfigError(f"client must be an OctopushClient, got {type(client).__name__}")
    with_messages = MESSAGES_RESOURCE_NAME in chosen
    conversations = conversations_resource(
        client,
        start_date=start,
        lag=lag_seconds,
        clock_skew=clock_skew_seconds,
        max_pages=max_pages,
        slice_conversations=slice_conversations,
        privacy=privacy,
        deletions=deletions,
    )
    if not with_messages:
        return conversations
    return [
        conversations,
        messages_resource(conversations, client, lag=lag_seconds, privacy=privacy),
    ]


def _check_resources(resources: Sequence[str]) -> tuple[str, ...]:
    """The chosen resources; messages are read for the conversations read, so need them."""
    chosen = (resources,) if isinstance(resources, str) else tuple(resources)
    unknown = [name for name in chosen if name not in RESOURCES]
    if unknown or not chosen:
        raise OctopushConfigError(
            f"resources must be some of {', '.join(RESOURCES)}; got {list(chosen)!r}"
        )
    if RESOURCE_NAME not in chosen:
        raise OctopushConfigError(
            "resources: messages are read for the conversations each run reads, so "
            f"'{RESOURCE_NAME}' must be loaded with them; got {list(chosen)!r}"
        )
    return chosen
