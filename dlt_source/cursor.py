"""The cursor of a load and what its read counted, kept by the source rather than by dlt.

dlt's incremental cursor is the newest value among the rows loaded. One conversation stamped in
the future (a server clock gone wrong) would then become the cursor, and every later run would
stop on page 1 as caught up, never loading a new conversation again. So the source keeps the
cursor itself: the newest ``last_message_at`` that is not beyond the start of the run plus a
tolerance for clock skew. A row beyond it is loaded as it is, named in a warning and counted,
but never moves the cursor.

The cursor stays where dlt's incremental kept it in the resource state, so a table loaded by an
earlier version carries on incrementally, and it is committed with the load in the destination
as dlt's was.

Counts are of distinct conversations, each as the newest version read (the one the merge keeps):
a page read twice because the list moved, or a row shifted onto the next page, counts once.
Those in the future are counted apart: their timestamps cannot tell whether they are new.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from octopush_dlt.arrow_values import FALSE, ONE_TRUE, constant_int8, int64_array
from octopush_dlt.instants import FIRST_FIELD, arrow_instant, from_micros, instant_datetime
from octopush_dlt.settings import CURSOR_COLUMN, PRIMARY_KEY

__all__ = ["ReadTally", "store_cursor", "stored_cursor"]

logger = logging.getLogger(__name__)

# Future timestamps named one by one in the log; beyond, only their number at the end.
NAMED_FUTURE_ROWS = 10

_KINDS = ("unchanged", "updated", "new")  # ranked: a later version of a row only ranks higher
_NEW_KIND = _KINDS.index("new")
_NEW = constant_int8(_NEW_KIND, 1)[0]


def stored_cursor(state: dict[str, Any]) -> datetime | None:
    """The cursor a resource state holds (None before the first load)."""
    value: datetime | None = state.get("incremental", {}).get(CURSOR_COLUMN, {}).get("last_value")
    return value


def store_cursor(state: dict[str, Any], value: datetime | None) -> None:
    """Keep ``value`` as the cursor, where dlt's incremental kept it."""
    state.setdefault("incremental", {}).setdefault(CURSOR_COLUMN, {})["last_value"] = value


class ReadTally:
    """Counts the rows of one read and moves the cursor over those that are not in the future.

    ``previous`` is the cursor the run started from, ``horizon`` the latest instant that is not
    in the future (the run's start plus the clock-skew tolerance). ``cursor``, when given, is
    where the cursor starts instead of ``previous``: a slice of a first load counts every row
    as new (``previous=None``), but must never move the cursor back. Each table is counted
    column-wise; what is kept until :meth:`finish` counts distinct conversations is, per row,
    a 64-bit hash of its id and its kind, 9 bytes in Arrow arrays (a set of ids took 100).
    Two ids of one read share a hash with a chance of about 3 in 100 million at a million
    conversations: they would count once, and the load would merge instead of append.
    """

    def __init__(
        self, *, previous: datetime | None, horizon: datetime, cursor: datetime | None = None
    ) -> None:
        self.horizon = horizon
        self._previous = None if previous is None else arrow_instant(previous)
        self._horizon = arrow_instant(horizon)
        self._cursor = previous if cursor is None else cursor
        self._hashes: list[pa.Array] = []
        self._kinds: list[pa.Array] = []
        self._future: list[pa.Array] = []
        self._named_future: set[str] = set()
        self._rows = 0
        self._counts: dict[str, int] | None = None

    @property
    def cursor(self) -> datetime | None:
        """The newest ``last_message_at`` read that is not in the future, or where it started."""
        return self._cursor

    @property
    def repeated(self) -> bool:
        """Whether the read served some conversation more than once."""
        counts = self._distinct()
        return self._rows > sum(counts[kind] for kind in (*_KINDS, "future"))

    def add(self, table: pa.Table) -> None:
        """Count rows as new, updated, unchanged (re-read inside the lag window) or future."""
        self._counts = None
        self._rows += table.num_rows
        ids, last = table.column(PRIMARY_KEY), table.column(CURSOR_COLUMN)
        future = pc.greater(last, self._horizon)
        if pc.any(future).as_py():
            self._note_future(ids.filter(future), last.filter(future))
            present = pc.invert(future)
            table = table.filter(present)
            ids, last = table.column(PRIMARY_KEY), table.column(CURSOR_COLUMN)
        if not table.num_rows:
            return
        newest = instant_datetime(pc.max(last))
        if self._cursor is None or newest > self._cursor:
            self._cursor = newest
        self._hashes.append(_hashes(ids))
        self._kinds.append(_kept(self._kind(table)))

    def _kind(self, table: pa.Table) -> pa.Array:
        """2 new (first message after ``previous``), 1 updated, 0 unchanged, per row."""
        if self._previous is None:
            return constant_int8(_NEW_KIND, table.num_rows)
        first = pc.greater(table.column(FIRST_FIELD), self._previous).combine_chunks()
        last = pc.greater(table.column(CURSOR_COLUMN), self._previous).combine_chunks()
        updated = pc.cast(last, pa.int8())
        return pc.if_else(first.fill_null(FALSE), _NEW, updated)

    def finish(self) -> dict[str, int]:
        """Distinct conversations read: ``new``, ``updated``, ``unchanged`` and ``future``.

        Each is counted once, as the newest version read (the one the merge keeps). Also logs
        how many had future timestamps when there were too many to name one by one.
        """
        counts = self._distinct()
        if self._future and counts["all_future"] > NAMED_FUTURE_ROWS:
            logger.warning(
                "%d conversations had a last_message_at in the future (beyond %s); the first %d "
                "are named above",
                counts["all_future"],
                self.horizon.isoformat(),
                NAMED_FUTURE_ROWS,
            )
        return {kind: counts[kind] for kind in (*_KINDS, "future")}

    def _distinct(self) -> dict[str, int]:
        """Distinct ids per kind (their highest), and future-only ones; computed once.

        By sorting, not hashing: Arrow's hash grouping took 135 MiB for a million ids, the
        sort a fifth of that.
        """
        if self._counts is not None:
            return self._counts
        counts = dict.fromkeys((*_KINDS, "future", "all_future"), 0)
        hashes = pa.chunked_array(self._hashes, pa.int64())
        if self._hashes:
            rows = pa.table({"id": hashes, "kind": pa.chunked_array(self._kinds, pa.int8())})
            rows = rows.sort_by([("id", "ascending"), ("kind", "descending")])
            ids = rows.column("id")
            starts = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))  # an id's first row
            highest = rows.column("kind").filter(pa.chunked_array([ONE_TRUE, *starts.chunks]))
            for kind, number in zip(*_value_counts(highest), strict=True):
                counts[_KINDS[kind]] = number
        if self._future:
            future = pc.unique(pa.chunked_array(self._future, pa.int64()))
            also_present = pc.unique(hashes.filter(pc.is_in(hashes, value_set=future)))
            counts["all_future"] = len(future)
            counts["future"] = len(future) - len(also_present)
        self._counts = counts
        return counts

    def _note_future(self, ids: pa.ChunkedArray, moments: pa.ChunkedArray) -> None:
        self._future.append(_hashes(ids))
        micros = moments.cast(pa.int64()).to_pylist()
        for conversation_id, moment in zip(ids.to_pylist(), map(from_micros, micros), strict=True):
            if len(self._named_future) >= NAMED_FUTURE_ROWS:
                return
            if conversation_id in self._named_future:
                continue
            self._named_future.add(conversation_id)
            logger.warning(
                "Octopush conversation %s has last_message_at %s, beyond this run's start plus "
                "the clock-skew tolerance (%s): loaded as it is, but it does not move the cursor",
                conversation_id,
                moment.isoformat(),
                self.horizon.isoformat(),
            )


def _kept(array: pa.Array) -> pa.Array:
    """A copy of ``array`` kept for the rest of the read, in a pool of its own: small buffers
    that stay among the pages' short-lived ones in the C library's heap keep it from being
    reused (kept there, the ids of a 1M load took 45 MiB more)."""
    return pa.concat_arrays([array], memory_pool=_KEPT_POOL)


def _kept_pool() -> pa.MemoryPool:
    """mimalloc's pool, or the default one where pyarrow was built without it."""
    try:
        return pa.mimalloc_memory_pool()
    except pa.ArrowNotImplementedError:
        return pa.default_memory_pool()


_KEPT_POOL = _kept_pool()


def _hashes(ids: pa.ChunkedArray) -> pa.Array:
    """Python's 64-bit hash of each id (Arrow has no hash function of its own)."""
    return int64_array(map(hash, ids.to_pylist()), memory_pool=_KEPT_POOL)


def _value_counts(values: pa.ChunkedArray) -> tuple[list[int], list[int]]:
    counted = pc.value_counts(values)
    return counted.field("values").to_pylist(), counted.field("counts").to_pylist()
