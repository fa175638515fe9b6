"""What differs between the API's lists: where they are, what they are asked, how a row is read.

The conversations list and each conversation's messages are read by the same machine (retries,
throttle, errors, paging); an :class:`Endpoint` is all that tells them apart. The two are
declared here as data, :data:`CONVERSATIONS` and :data:`MESSAGES`; a client places them under
its base URL with :meth:`Endpoint.at`, and asks a conversation's messages with
:meth:`Endpoint.asking`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from octopush_provider.conversations import CURSOR_FIELD, ID_FIELD, parse_page
from octopush_provider.messages import MESSAGE_ID_FIELD, parse_messages
from octopush_provider.page import Row, Tabulate
from octopush_provider.settings import CONVERSATIONS_PATH, MESSAGES_PATH

__all__ = ["CONVERSATIONS", "MESSAGES", "Endpoint", "Parse"]

Parse = Callable[..., list[Row]]
"""``parse(items, page=n)``: the JSON array of a page to clean records, or a typed error."""


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """One list endpoint, as data.

    Attributes:
        noun: what its rows are called in errors and log lines (``"conversations"``).
        path: where it lives below the base URL.
        id_field: the key of a row, by which the paging machine notices rows served again.
        parse: how the JSON array of a page becomes rows (see :data:`Parse`).
        cursor_field: the field that orders the list (None: the list is not compared by it); a
            concurrent read compares the first page's ids and cursors to see the list move.
        url: the full URL, once placed under a base URL by :meth:`at`.
        params: extra query parameters sent with every page.
        tabulate: tried on each page's body before ``parse`` (see :class:`Page`).
    """

    noun: str
    path: str
    id_field: str
    parse: Parse
    cursor_field: str | None = None
    url: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    tabulate: Tabulate | None = None

    def at(self, base_url: str, path: str | None = None) -> Endpoint:
        """This endpoint under ``base_url``, at ``path`` (default: its own)."""
        path = self.path if path is None else path
        return replace(self, path=path, url=f"{base_url}/{path.strip('/')}")

    def asking(self, params: Mapping[str, str]) -> Endpoint:
        """This endpoint with ``params`` sent with every page, besides the paging ones."""
        return replace(self, params={**self.params, **params})


CONVERSATIONS = Endpoint(
    noun="conversations",
    path=CONVERSATIONS_PATH,
    id_field=ID_FIELD,
    parse=parse_page,
    cursor_field=CURSOR_FIELD,
)

# The messages of one conversation, asked with its ``conversation_id`` (see
# :func:`octopush_provider.messages.conversation_filter`); read in order, with no cursor.
MESSAGES = Endpoint(
    noun="messages",
    path=MESSAGES_PATH,
    id_field=MESSAGE_ID_FIELD,
    parse=parse_messages,
)
