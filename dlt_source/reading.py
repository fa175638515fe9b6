"""Deciding, page by page, when an incremental read has gone far enough.

The API has no filter on time, so we read newest-first and stop at the first page that reaches
past ``start`` (the cursor minus the lag). That is only safe while the list really is ordered
newest-first, so every page is checked: once a conversation turns up newer than the one before
it, the read goes on to the end and the rows are filtered here instead.

A page is a slice of the list at the moment it was served, so its rows are in order whatever
happens around it. Across pages, activity during the read pushes rows from one page into the
next (or further, for a page answered late), which would look like disorder without being any;
but only rows served before in the read are pushed so. So the first row of a page that no page
before it served (the paging says which: ``Page.first_new``) must not be newer than the last
row of the page before. When the read would stop, the client reads one more page (see
``OctopushClient.iter_pages``) so that this check also covers the page the stop would skip: a
server whose page 2 is newer than page 1 is read in full, not stopped after page 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress, pairwise

import pyarrow as pa
import pyarrow.compute as pc

from octopush_dlt.instants import (
    arrow_instant,
    cursor_micros,
    from_micros,
    rows_cursor_micros,
    to_micros,
)
from octopush_provider.conversations import CURSOR_FIELD, Conversation
from octopush_provider.paging import Page

logger = logging.getLogger(__name__)


def _moment(page: Page, index: int) -> int:
    """The ``last_message_at`` of one row of a page, in microseconds."""
    if page.table is not None:
        moment: int = page.table.column(CURSOR_FIELD)[index].value
        return moment
    return to_micros(page.rows[index][CURSOR_FIELD])


@dataclass(kw_only=True)
class ReadGuard:
    """Stop condition and ordering check for one read.

    ``start`` is the oldest ``last_message_at`` still wanted (None: read everything);
    ``trust_order`` is False once a previous run saw the ordering fail.
    """

    start: datetime | None
    trust_order: bool = True
    disorder_seen: bool = False
    # Disorder within a page is the server's; across pages it may be the list moving under a
    # concurrent pass, which the paging then reads again in order: only the last pass counts.
    _disorder_in_a_page: bool = field(default=False, init=False, repr=False)
    _disorder_across_this_pass: bool = field(default=False, init=False, repr=False)
    _start: int | None = field(init=False, repr=False)
    _start_instant: pa.TimestampScalar | None = field(init=False, repr=False)
    # The page before: its number and its last row's last_message_at.
    _before: tuple[int, int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._start = None if self.start is None else to_micros(self.start)
        self._start_instant = None if self.start is None else arrow_instant(self.start)

    @property
    def order_failed(self) -> bool:
        """Whether the list is not ordered newest-first, which later runs must remember: disorder
        within a page, or across the pages of the read's last pass."""
        return self._disorder_in_a_page or self._disorder_across_this_pass

    def should_stop(self, page: Page) -> bool:
        """Called after each page: True when every later page is older than ``start``."""
        oldest = self._check_order(page)
        self._check_across(page)
        if self._start is None or not self.trust_order or self.disorder_seen:
            return False
        return oldest < self._start

    def wanted(self, instants: list[int]) -> list[bool] | None:
        """Which rows, by their ``last_message_at``, are at or after ``start`` (None: all)."""
        if self._start is None:
            return None
        start = self._start
        return [moment >= start for moment in instants]

    def keep_table(self, table: pa.Table) -> pa.Table:
        """The rows of a table at or after ``start``."""
        if self._start_instant is None:
            return table
        return table.filter(pc.greater_equal(table.column(CURSOR_FIELD), self._start_instant))

    def keep(self, rows: list[Conversation]) -> list[Conversation]:
        """The parsed rows at or after ``start``."""
        wanted = self.wanted(rows_cursor_micros(rows))
        return rows if wanted is None else list(compress(rows, wanted))

    def _check_order(self, page: Page) -> int:
        """The page's oldest ``last_message_at``; notes a row newer than the one before it."""
        if page.table is not None:  # column-wise, unless there is a row to name
            column = page.table.column(CURSOR_FIELD)
            later, earlier = column.slice(1), column.slice(0, len(column) - 1)
            if len(column) < 2 or not pc.any(pc.greater(later, earlier)).as_py():
                oldest: int = pc.min(column).value
                return oldest
        moments = cursor_micros(page)
        for index, (previous, moment) in enumerate(pairwise(moments), start=1):
            if moment > previous:
                self._note_disorder(page.number, index, moment, previous)
                self._disorder_in_a_page = True
        return min(moments)

    def _check_across(self, page: Page) -> None:
        """Note a page whose first row not served before in the pass is newer than the last row
        of the page before."""
        before, self._before = self._before, (page.number, _moment(page, -1))
        index = page.first_new
        if before is not None and page.number <= before[0]:
            self._disorder_across_this_pass = False  # a pass read again from page 1
        if before is None or page.number != before[0] + 1 or index is None:
            return  # a new pass starts at page 1; a page of rows served before proves nothing
        moment = _moment(page, index)
        if moment > before[1]:
            self._note_disorder(page.number, index, moment, before[1])
            self._disorder_across_this_pass = True

    def _note_disorder(self, number: int, index: int, moment: int, previous: int) -> None:
        if not self.disorder_seen:
            logger.warning(
                "Octopush conversations are not ordered newest-first (page %d, item %d: %s "
                "after %s); reading every page and filtering here, in this run and the next ones",
                number,
                index,
                from_micros(moment).isoformat(),
                from_micros(previous).isoformat(),
            )
        self.disorder_seen = True
