"""Notice conversations deleted at the source, and flag (or remove) them in the warehouse.

The list has no deletion feed: a deleted conversation just stops appearing. So a detection run
reads the whole list and reloads every conversation in it, stamped with the run's time in
``_octopush_listed_at``; after the load, every row of the table without that stamp is one the
list no longer returns. In ``soft`` mode it gets ``_octopush_deleted_at``, the run's time; in
``hard`` mode it is deleted, with its messages. A conversation that comes back is reloaded by
the next detection run (or the next incremental run, if it has news) with
``_octopush_deleted_at`` empty again.

Moving data must not pass for a deletion. Read in order, activity only pushes rows down, into a
page read later; a concurrent read checks the head and re-reads in order if the list moved (see
:mod:`octopush_provider.paging`). What an in-order read can miss is a row that jumps to the top
after its page was passed: so, after the full read, the head of the list is read again down to
where the read started. A deletion above a row that has not been read yet moves that row up a
page and can hide it: so when rows of the table are still unseen, the list is read once more
and those found are kept (:func:`full_read`). Only a row hidden in both reads is flagged by
mistake, and the next detection run clears it.

Finally, a broken answer (an empty list, a wrong account) must not wipe the warehouse: if the
list returned fewer than ``min_share`` of the conversations the table holds, nothing is marked
and the run fails saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import dlt
import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns

from octopush_dlt.errors import OctopushDeletionError
from octopush_dlt.reading import ReadGuard
from octopush_provider.client import OctopushClient
from octopush_provider.conversations import CURSOR_FIELD, ID_FIELD, Conversation
from octopush_provider.exceptions import OctopushConfigError
from octopush_provider.page import StopReason
from octopush_provider.paging import PageStream

__all__ = [
    "DELETED_AT",
    "LISTED_AT",
    "DeletionPolicy",
    "DeletionReport",
    "check_complete",
    "full_read",
    "held_ids",
    "mark_deleted",
    "stamp_listed",
]

logger = logging.getLogger(__name__)

DELETED_AT = "_octopush_deleted_at"
LISTED_AT = "_octopush_listed_at"
DELETION_HINTS: TTableSchemaColumns = {
    name: {"data_type": "timestamp", "timezone": True, "nullable": True}
    for name in (LISTED_AT, DELETED_AT)
}
MODES = ("soft", "hard")
DEFAULT_MIN_SHARE = 0.5
# How far below the first row of the read the head is read again: messages stamped a little
# before the moment they became visible still count as after the read began.
HEAD_MARGIN = timedelta(minutes=10)

Mode = Literal["soft", "hard"]


@dataclass(frozen=True, kw_only=True)
class DeletionPolicy:
    """How a detection run treats the conversations the list no longer returns."""

    mode: Mode = "soft"
    min_share: float = DEFAULT_MIN_SHARE

    @classmethod
    def build(cls, *, mode: str, min_share: float) -> DeletionPolicy:
        if mode not in MODES:
            raise OctopushConfigError(
                f"deletes_mode must be one of {', '.join(MODES)}, got {mode!r}"
            )
        if not 0 <= min_share <= 1:
            raise OctopushConfigError(
                f"deletes_min_share must be between 0 and 1, got {min_share!r}"
            )
        return cls(mode=cast(Mode, mode), min_share=float(min_share))

    def record(self, *, listed_at: datetime) -> dict[str, Any]:
        """What the run leaves in its read report for :func:`mark_deleted`."""
        return asdict(self) | {"listed_at": listed_at.isoformat()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> tuple[DeletionPolicy, datetime]:
        policy = cls.build(mode=record["mode"], min_share=record["min_share"])
        return policy, datetime.fromisoformat(record["listed_at"])


def stamp_listed(table: pa.Table, listed_at: datetime) -> pa.Table:
    """The table with every row marked as listed by this detection run."""
    stamps = pa.array([listed_at] * table.num_rows, pa.timestamp("us", tz="UTC"))
    return table.append_column(LISTED_AT, stamps)


@dataclass(frozen=True, kw_only=True)
class DeletionReport:
    """What a detection run found: rows the table held, saw again, and marked or removed."""

    mode: Mode
    held: int
    seen: int
    marked: int
    deleted_at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def full_read(
    stream: PageStream,
    *,
    client: OctopushClient,
    held: Callable[[], set[str]],
    max_pages: int | None = None,
) -> Iterator[list[Conversation]]:
    """Every page of a full read, then what moving data could have hidden from it.

    First the head again, down to where the read began: any row that moved to the top during
    the read (and so above the read position) is newer than that. Then, if some ids of
    ``held()`` (the conversations the table holds unflagged) are still unseen, the whole list
    once more, keeping those: a row hidden by a deletion above it shows up in this second read.
    A read stopped by ``max_pages`` is not a full read: it ends there, and nothing is marked.
    """
    seen: set[str] = set()
    start: datetime | None = None
    for page in stream:
        if start is None and page:
            start = page[0][CURSOR_FIELD]
        seen.update(row[ID_FIELD] for row in page)
        yield page
    if start is None or stream.report.stop_reason is StopReason.MAX_PAGES:
        return
    guard = ReadGuard(start=start - HEAD_MARGIN)
    head = client.iter_pages(stop_when=guard.should_stop, max_pages=max_pages)
    for page in head:
        seen.update(row[ID_FIELD] for row in page)
        yield page
    if _capped(head, stream):
        return
    missing = held() - seen
    if missing:
        logger.info("%d conversations not listed: reading the list again to confirm", len(missing))
        confirm = client.iter_pages(max_pages=max_pages)
        for page in confirm:
            found = [row for row in page if row[ID_FIELD] in missing]
            if found:
                yield found
        _capped(confirm, stream)


def _capped(read: PageStream, full: PageStream) -> bool:
    """Whether ``read``, a part of the full read ``full``, stopped at ``max_pages``; if so the
    full read counts as capped too, and nothing is marked (:func:`check_complete`).

    The part's figures go into the full read's: it logged its own "read ended" line, and the
    summary's list line adds up every such line of the run.
    """
    full.report.add(read.report)
    if read.report.stop_reason is StopReason.MAX_PAGES:
        full.report.stop_reason = StopReason.MAX_PAGES
        return True
    return False


def held_ids(pipeline: dlt.Pipeline, *, table: str, key: str) -> set[str]:
    """The ids of the rows ``table`` holds and has not flagged; none before the first load."""
    with pipeline.destination_client() as job_client:
        # Every SQL destination's client reflects its tables; the base type does not say so.
        exists, columns = job_client.get_storage_table(table)  # type: ignore[attr-defined]
    if not exists:
        return set()
    with pipeline.sql_client() as client:
        name = client.make_qualified_table_name(table)
        alive = f" WHERE {DELETED_AT} IS NULL" if DELETED_AT in columns else ""
        rows = client.execute_sql(f"SELECT {key} FROM {name}{alive}") or []
        return {row[0] for row in rows}


def check_complete(stop_reason: str | None) -> None:
    """Refuse to mark anything after a read that did not reach the end of the list."""
    if stop_reason == StopReason.MAX_PAGES:
        raise OctopushDeletionError(
            "deletion detection refused: the read stopped at max_pages before the end of the "
            "list, so a conversation not seen may just be further down; nothing was marked. "
            "Run the detection without max_pages, or with a cap above the account's pages"
        )


def mark_deleted(
    pipeline: dlt.Pipeline,
    *,
    table: str,
    key: str,
    policy: DeletionPolicy,
    listed_at: datetime,
    children: Iterable[tuple[str, str]] = (),
) -> DeletionReport:
    """Flag (or delete) the rows of ``table`` that the detection run of ``listed_at`` missed.

    ``key`` is the table's primary key.
    ``children`` are ``(table, key column)`` pairs of rows that belong to a conversation (its
    messages), removed with it in ``hard`` mode. Raises :class:`OctopushDeletionError` and marks
    nothing when the load saw fewer than ``policy.min_share`` of the rows the table holds.
    """
    columns = pipeline.default_schema.tables.get(table, {}).get("columns", {})
    alive = f"{DELETED_AT} IS NULL" if DELETED_AT in columns else "1 = 1"
    if LISTED_AT not in columns:  # nothing was loaded with a stamp: nothing to compare
        return DeletionReport(
            mode=policy.mode, held=0, seen=0, marked=0, deleted_at=listed_at.isoformat()
        )
    with pipeline.sql_client() as client:
        name = client.make_qualified_table_name(table)
        held = _count(client, f"SELECT count(*) FROM {name} WHERE {alive}")
        seen = _count(client, f"SELECT count(*) FROM {name} WHERE {LISTED_AT} = %s", listed_at)
        if seen < policy.min_share * held:
            raise OctopushDeletionError(
                f"deletion detection refused: the list returned {seen} conversations but "
                f"{table} holds {held}, under the safety share {policy.min_share:g}; "
                "nothing was marked. If that many were really deleted, run again with a lower "
                "deletes_min_share"
            )
        gone = f"({LISTED_AT} IS NULL OR {LISTED_AT} <> %s)"
        # One transaction: a conversation and its messages go together, or not at all.
        with client.begin_transaction():
            if policy.mode == "hard":
                marked = _count(client, f"SELECT count(*) FROM {name} WHERE {gone}", listed_at)
                for child, child_key in children:
                    child_name = client.make_qualified_table_name(child)
                    client.execute_sql(
                        f"DELETE FROM {child_name} WHERE {child_key} IN "
                        f"(SELECT {key} FROM {name} WHERE {gone})",
                        listed_at,
                    )
                client.execute_sql(f"DELETE FROM {name} WHERE {gone}", listed_at)
            else:
                condition = f"{gone} AND {alive}"
                marked = _count(client, f"SELECT count(*) FROM {name} WHERE {condition}", listed_at)
                client.execute_sql(
                    f"UPDATE {name} SET {DELETED_AT} = %s WHERE {condition}", listed_at, listed_at
                )
    report = DeletionReport(
        mode=policy.mode, held=held, seen=seen, marked=marked, deleted_at=listed_at.isoformat()
    )
    logger.info(
        "Deletion detection (%s): %d of %d conversations still listed; %d %s",
        policy.mode,
        seen,
        held,
        marked,
        "removed" if policy.mode == "hard" else "flagged deleted",
    )
    return report


def _count(client: Any, sql: str, *args: Any) -> int:
    rows = client.execute_sql(sql, *args)
    return int(rows[0][0])
