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

from octopush_dlt.settings import CURSOR_COLUMN
from octopush_provider.conversations import ID_FIELD, Conversation

__all__ = ["ReadTally", "store_cursor", "stored_cursor"]

logger = logging.getLogger(__name__)

# Future timestamps named one by one in the log; beyond, only their number at the end.
NAMED_FUTURE_ROWS = 10

_KINDS = ("unchanged", "updated", "new")  # ranked: a later version of a row only ranks higher


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
    in the future (the run's start plus the clock-skew tolerance).
    """

    def __init__(self, *, previous: datetime | None, horizon: datetime) -> None:
        self.previous = previous
        self.horizon = horizon
        self.cursor = previous
        self._kinds: dict[str, int] = {}
        self._future: set[str] = set()

    def add(self, rows: list[Conversation]) -> None:
        """Count rows as new, updated, unchanged (re-read inside the lag window) or future."""
        previous, horizon, kinds = self.previous, self.horizon, self._kinds
        for row in rows:
            moment: datetime = row[CURSOR_COLUMN]
            if moment > horizon:
                self._note_future(row)
                continue
            if self.cursor is None or moment > self.cursor:
                self.cursor = moment
            first = row["first_message_at"]
            if previous is None or (first is not None and first > previous):
                kind = 2
            else:
                kind = 1 if moment > previous else 0
            conversation_id = row[ID_FIELD]
            if kinds.get(conversation_id, -1) < kind:
                kinds[conversation_id] = kind

    def finish(self) -> dict[str, int]:
        """Distinct conversations read: ``new``, ``updated``, ``unchanged`` and ``future``.

        Also logs how many had future timestamps when there were too many to name one by one.
        """
        counts = dict.fromkeys(_KINDS, 0)
        for kind in self._kinds.values():
            counts[_KINDS[kind]] += 1
        if len(self._future) > NAMED_FUTURE_ROWS:
            logger.warning(
                "%d conversations had a last_message_at in the future (beyond %s); the first %d "
                "are named above",
                len(self._future),
                self.horizon.isoformat(),
                NAMED_FUTURE_ROWS,
            )
        return counts | {"future": len(self._future - self._kinds.keys())}

    def _note_future(self, row: Conversation) -> None:
        conversation_id = row[ID_FIELD]
        if conversation_id in self._future:
            return
        self._future.add(conversation_id)
        if len(self._future) <= NAMED_FUTURE_ROWS:
            logger.warning(
                "Octopush conversation %s has last_message_at %s, beyond this run's start plus "
                "the clock-skew tolerance (%s): loaded as it is, but it does not move the cursor",
                conversation_id,
                row[CURSOR_COLUMN].isoformat(),
                self.horizon.isoformat(),
            )
