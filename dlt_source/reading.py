"""Deciding, page by page, when an incremental read has gone far enough.

The API has no filter on time, so we read newest-first and stop at the first page that reaches
past ``start`` (the cursor minus the lag). That is only safe while the list really is ordered
newest-first, so every page is checked: once a conversation turns up newer than an older one
before it, the read goes on to the end and the rows are filtered here instead.

Conversations that get a message during the read jump to the top with a time newer than the
first page's newest, and push the rows above their old place down a page; neither is disorder,
so both are left out of the check (a push of more than a page looks like disorder, and costs
only a full read).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from provider.conversations import CURSOR_FIELD, ID_FIELD, Conversation
from provider.paging import Page

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class ReadGuard:
    """Stop condition and ordering check for one read.

    ``start`` is the oldest ``last_message_at`` still wanted (None: read everything);
    ``trust_order`` is False once a previous run saw the ordering fail.
    """

    start: datetime | None
    trust_order: bool = True
    disorder_seen: bool = False
    _newest_at_start: datetime | None = None
    _pages: dict[int, tuple[datetime | None, frozenset[str]]] = field(default_factory=dict)

    def should_stop(self, page: Page) -> bool:
        """Called after each page: True when every later page is older than ``start``."""
        oldest = self._check_order(page)
        if self.start is None or not self.trust_order or self.disorder_seen:
            return False
        return oldest is not None and oldest < self.start

    def keep(self, rows: list[Conversation]) -> list[Conversation]:
        """The rows at or after ``start``."""
        if self.start is None:
            return rows
        start = self.start
        return [row for row in rows if row[CURSOR_FIELD] >= start]

    def _check_order(self, page: Page) -> datetime | None:
        """Record the page's oldest row and note any row newer than one read before it."""
        rows = page.conversations
        if self._newest_at_start is None:
            self._newest_at_start = max(row[CURSOR_FIELD] for row in rows)
        newest_at_start = self._newest_at_start
        oldest, previous_ids = self._pages.get(page.number - 1, (None, frozenset()))
        first_ids = self._pages[1][1] if 1 in self._pages else frozenset()
        for row in rows:
            moment: datetime = row[CURSOR_FIELD]
            # Rows newer than the first page moved up during the read; rows already read on
            # the first or the previous page were pushed down by them. Neither says anything
            # about the order.
            if (
                moment > newest_at_start
                or row[ID_FIELD] in previous_ids
                or row[ID_FIELD] in first_ids
            ):
                continue
            if oldest is not None and moment > oldest:
                self._note_disorder(page.number, row, oldest)
            oldest = moment
        self._pages[page.number] = (oldest, frozenset(row[ID_FIELD] for row in rows))
        # Page 1 stays for a read that starts over at page 2; otherwise one page is enough.
        for number in [n for n in self._pages if n not in (1, page.number)]:
            del self._pages[number]
        return oldest

    def _note_disorder(self, number: int, row: Conversation, previous: datetime) -> None:
        if not self.disorder_seen:
            logger.warning(
                "Octopush conversations are not ordered newest-first (page %d: %s after %s); "
                "reading every page and filtering here, in this run and the next ones",
                number,
                row[CURSOR_FIELD].isoformat(),
                previous.isoformat(),
            )
        self.disorder_seen = True
