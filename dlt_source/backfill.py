"""First loads in slices, so that a load killed at 90 % does not start over.

A first load reads every conversation and then, for each, its messages: on a big account that
is hours of requests, and dlt commits a run (rows, cursor, state) only at its end. So a first
load is a sequence of runs, one slice each, each committed on its own.

The list is read newest-first, but slices are taken oldest-first: slice 1 holds the ``size``
conversations with the oldest ``last_message_at``, slice 2 the next ``size`` after
``done_upto`` (the newest instant of the slices done), and so on. The cursor dlt keeps is then
always the newest instant loaded, exactly as for an incremental run, and a resumed load only
has to know ``done_upto``: it reads the list (cheap pages) and requests messages only for the
conversations after it. Reading newest-first slices instead would move the cursor to the newest
conversation after slice 1, and the older ones would never be read again.

Data moving during the backfill loses nothing: a conversation that gets a new message jumps
past ``done_upto`` and is taken by a later slice (or, once the backfill is complete, by the next
incremental run, since its instant is newer than the cursor). Rows that share the instant at a
slice's edge all go into the next slice, so none is split off. Each slice takes at least one
conversation, so the backfill ends; a slice that cannot take any raises instead.

A slice is bounded in bytes as well as in rows (``SLICE_BYTES``, each row weighed as its JSON
text): every conversation of a slice is held until the slice is loaded, and 5,000 rows of
600 KB each would be 3 GB. Real rows (a few KB) reach the row bound long before the byte bound;
the oldest row is always taken, however large (a page, and so a row, is at most
``max_response_bytes``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from itertools import count
from typing import Any

import orjson

from octopush_dlt.reading import ReadGuard
from octopush_dlt.settings import CURSOR_COLUMN, PRIMARY_KEY, SLICE_BYTES
from octopush_provider.conversations import Conversation
from octopush_provider.exceptions import OctopushConfigError
from octopush_provider.page import StopReason
from octopush_provider.paging import PageStream


@dataclass(kw_only=True)
class Backfill:
    """Where a first load stands, kept in the conversations resource's state."""

    done_upto: datetime | None = None
    done: int = 0
    known: int = 0
    complete: bool = False

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Backfill:
        return cls(**state)

    def as_state(self) -> dict[str, Any]:
        return asdict(self)


def json_bytes(row: Conversation) -> int:
    """The bytes of a parsed row as JSON text: about what it took in the page."""
    return len(orjson.dumps(row, default=str))


class SliceSelector:
    """Keeps the oldest conversations after ``after`` from a read of the whole list: at most
    ``size`` of them, and no more than ``max_bytes`` as ``weigh`` counts them (but at least one).

    Memory is bounded by one row more than a slice, however long the list.
    """

    def __init__(
        self,
        *,
        after: datetime | None,
        size: int,
        max_bytes: int = SLICE_BYTES,
        weigh: Callable[[Conversation], int] = json_bytes,
    ) -> None:
        if size < 1:
            raise OctopushConfigError(f"slice size must be >= 1, got {size}")
        self._after = after
        self._size = size
        self._max_bytes = max_bytes
        self._weigh = weigh
        # Newest first (a max-heap on the instant); each row with its weight.
        self._heap: list[tuple[float, int, int, Conversation]] = []
        self._bytes = 0
        self._held: dict[str, datetime] = {}  # id -> instant of the newest version held
        self._order = count()
        self.candidates = 0

    def offer(self, rows: list[Conversation]) -> None:
        """Consider rows of the list; those at or before ``after`` are done already."""
        for row in rows:
            moment: datetime = row[CURSOR_COLUMN]
            if self._after is not None and moment <= self._after:
                continue
            if self._held.get(row[PRIMARY_KEY]) == moment:
                continue  # the same version again: a read that went over pages twice
            self.candidates += 1
            if self._full() and -moment.timestamp() <= self._heap[0][0]:
                continue  # newer than the newest held, which is already left out
            weight = self._weigh(row)
            heapq.heappush(self._heap, (-moment.timestamp(), next(self._order), weight, row))
            self._bytes += weight
            self._held[row[PRIMARY_KEY]] = moment
            while self._over():
                *_, weight, dropped = heapq.heappop(self._heap)
                self._bytes -= weight
                if self._held.get(dropped[PRIMARY_KEY]) == dropped[CURSOR_COLUMN]:
                    del self._held[dropped[PRIMARY_KEY]]

    def _over(self) -> bool:
        """Whether the rows held but the newest break a bound: the newest is not needed.

        One row more than a slice is held: the first left out tells where the slice must end.
        """
        return len(self._heap) - 1 > self._size or (
            len(self._heap) > 2 and self._bytes - self._heap[0][2] > self._max_bytes
        )

    def _full(self) -> bool:
        """Whether the rows held are a slice and the first row left out."""
        return len(self._heap) > self._size or (
            len(self._heap) > 1 and self._bytes > self._max_bytes
        )

    def take(self) -> tuple[list[Conversation], bool]:
        """The slice, oldest first, and whether it is the last one."""
        newest: dict[str, Conversation] = {}
        for *_, row in sorted(self._heap, key=lambda item: (-item[0], item[1])):
            newest[row[PRIMARY_KEY]] = row
        rows = sorted(newest.values(), key=lambda row: row[CURSOR_COLUMN])
        if self.candidates == len(self._heap) and not self._full():
            return rows, True
        edge = max(row[CURSOR_COLUMN] for *_, row in self._heap)
        rows = [row for row in rows if row[CURSOR_COLUMN] < edge]
        if not rows:
            if len(self._heap) > self._size:
                raise OctopushConfigError(
                    f"more than {self._size} conversations share last_message_at "
                    f"{edge.isoformat()}: raise slice_conversations so that a slice can hold "
                    "them all"
                )
            raise OctopushConfigError(
                f"the conversations that share last_message_at {edge.isoformat()} weigh more "
                f"than a slice's {self._max_bytes // (1024 * 1024)} MiB: raise SLICE_BYTES "
                "(octopush_dlt.settings) so that a slice can hold them all"
            )
        return rows, False


def read_slice(
    stream: PageStream, guard: ReadGuard, backfill: Backfill, *, size: int
) -> list[Conversation]:
    """The conversations of one slice of a first load: the next ``size`` (or ``SLICE_BYTES``),
    oldest first.

    Newest-first, every row a slice wants is newer than the guard's start (the start date, or
    the end of the slices done minus the lag): the read stops there, as an incremental one does.
    A read capped by ``max_pages`` did not reach the oldest conversations, on the pages past the
    cap: its rows are loaded, but neither the backfill nor the cursor moves past them.
    """
    selector = SliceSelector(after=backfill.done_upto, size=size, max_bytes=SLICE_BYTES)
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
