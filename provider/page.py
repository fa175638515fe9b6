"""A page as the client hands it on, and the reasons a read can end."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

Row = dict[str, Any]
"""One record of a list endpoint: a conversation, or a message."""

# Builds a page's table from its body as sent, with each row's id and cursor as sent (what pages
# are compared by), or returns None to have the body parsed row by row.
Tabulate = Callable[[bytes], tuple[Any, list[Row]] | None]


class StopReason(StrEnum):
    """Why a read ended."""

    NO_CONVERSATIONS = "no_conversations"  # page 1 was empty or 404: the account has none
    EMPTY_PAGE = "empty_page"  # a page past the end answered []
    NOT_FOUND = "not_found"  # a page past the end answered 404
    CAUGHT_UP = "caught_up"  # the caller's stop condition held (e.g. past the cursor)
    MAX_PAGES = "max_pages"  # the caller's page limit was reached


# The API's own "nothing here" (`{"code": 1004, "message": "No conversation found"}`), as opposed
# to the 404 of a wrong path (`"Unknown endpoint ..."`, also code 1004 behind some gateways).
_NOTHING_FOUND = re.compile(
    r"\bno conversations? (?:was |were )?found\b|\bconversations? not found\b"
)


def says_nothing_found(body: bytes) -> bool:
    """Whether a 404's body is the API's answer that there is no conversation to list."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    message = answer.get("message") if isinstance(answer, dict) else None
    return isinstance(message, str) and _NOTHING_FOUND.search(message.lower()) is not None


@dataclass(frozen=True, kw_only=True)
class Page:
    """One answered page: its rows (conversations or messages), or the proof that the list ended.

    When the read's ``tabulate`` made a ``table`` of the page, ``rows`` holds only each row's id
    and cursor (``last_message_at``) as sent: what pages are compared by.
    """

    number: int
    rows: list[Row]
    table: Any = None
    attempts: int = 1
    end: StopReason | None = None
    size: int = 0  # bytes of the body as read
    # The first row that no earlier page of the read's pass served (None: every row was, or
    # the page was not read as part of a pass): rows before it were pushed down by moving data.
    first_new: int | None = None
