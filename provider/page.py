"""A page as the client hands it on, and the reasons a read can end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from octopush_provider.conversations import Conversation

# Builds a page's table from the API's objects as sent, or returns None to have them parsed.
Tabulate = Callable[[list[Any]], Any]


class StopReason(StrEnum):
    """Why a read ended."""

    NO_CONVERSATIONS = "no_conversations"  # page 1 was empty or 404: the account has none
    EMPTY_PAGE = "empty_page"  # a page past the end answered []
    NOT_FOUND = "not_found"  # a page past the end answered 404
    CAUGHT_UP = "caught_up"  # the caller's stop condition held (e.g. past the cursor)
    MAX_PAGES = "max_pages"  # the caller's page limit was reached


@dataclass(frozen=True, kw_only=True)
class Page:
    """One answered page: its conversations, or the proof that the list ended.

    When the read's ``tabulate`` made a ``table`` of the page, ``conversations`` holds the API's
    objects as sent, unparsed: only their ids and cursors are compared, between pages.
    """

    number: int
    conversations: list[Conversation]
    table: Any = None
    attempts: int = 1
    end: StopReason | None = None
