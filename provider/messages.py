"""Reads one conversation's messages and refuses answers that cannot be its messages.

The messages endpoint, like the list, ignores a parameter it cannot read *and still answers*:
a ``conversation_id`` it does not understand yields the messages of other conversations. A
message object does not say which conversation it belongs to, so nothing in the answer itself
gives that away. The parent conversation does: it says how many messages it has and who the
recipient is. An answer with more messages than that (beyond a few that may arrive during the
read) or with a message to another phone number fails that conversation with
:class:`~octopush_provider.exceptions.OctopushMismatchError`; its rows are never loaded.

The read of a conversation ends when it has as many messages as the parent announced (one
request for most conversations), or on an empty page or 404 as for the list. These checks are a
:class:`MessagesGuard` the client applies to its read: the guard never calls the client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pendulum.parsing import ParserError

from octopush_provider.conversations import keep_deep_values_as_text, to_utc
from octopush_provider.exceptions import OctopushError, OctopushMismatchError, OctopushResponseError
from octopush_provider.page import Page, StopReason

if TYPE_CHECKING:
    from octopush_provider.paging import PageStream

MESSAGE_ID_FIELD = "message_id"
CONVERSATION_ID_PARAM = "conversation_id"
CONVERSATION_ID_PREFIX = "cid_"
IDENTIFIERS_FIELD = "user_identifiers"
PHONE_FIELD = "phone_number"
# Messages that may arrive between the list read and the messages read of a conversation; more
# than this beyond ``number_of_messages`` is taken as an answer about other conversations.
ARRIVAL_SLACK = 10
# Documented fields that hold free text: never mistaken for a timestamp, whatever they say.
TEXT_FIELDS = frozenset(
    {
        "message_id",
        "text",
        "direction",
        "delivery_status",
        "channel",
        "user_identifier",
        "agent_assigned_to",
        "contact_name",
    }
)
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})")

Message = dict[str, Any]


def conversation_filter(conversation_id: str) -> str:
    """The ``conversation_id`` filter as the endpoint wants it: ``cid_`` and the id."""
    if conversation_id.startswith(CONVERSATION_ID_PREFIX):
        return conversation_id
    return CONVERSATION_ID_PREFIX + conversation_id


def _invalid(page: int, index: int, problem: str) -> OctopushResponseError:
    return OctopushResponseError(f"messages page {page}, item {index}: {problem}")


def parse_message(raw: Any, *, page: int, index: int) -> Message:
    """One API object to one record: a ``message_id`` is required; undocumented fields holding an
    ISO 8601 timestamp with an offset become UTC datetimes, like the list's timestamps."""
    if not isinstance(raw, dict):
        raise _invalid(page, index, f"expected a message object, got {type(raw).__name__}")
    record = raw.copy()
    message_id = record.get(MESSAGE_ID_FIELD)
    if message_id is None or isinstance(message_id, bool) or message_id == "":
        raise _invalid(page, index, f"message has no '{MESSAGE_ID_FIELD}'")
    record[MESSAGE_ID_FIELD] = str(message_id)
    for name, value in record.items():
        if name not in TEXT_FIELDS and type(value) is str and _TIMESTAMP.fullmatch(value):
            try:
                record[name] = to_utc(value)
            except (ValueError, ParserError) as error:
                raise _invalid(
                    page, index, f"message {message_id!r} has an invalid '{name}': {error}"
                ) from None
    keep_deep_values_as_text(record, page=page, index=index)
    return record


def parse_messages(items: list[Any], *, page: int) -> list[Message]:
    """Parse every object of a page of messages."""
    return [parse_message(item, page=page, index=index) for index, item in enumerate(items)]


@dataclass(frozen=True, kw_only=True)
class MessageParent:
    """What the conversations list says about a conversation, to read and check its messages."""

    conversation_id: str
    phone_number: str | None = None
    number_of_messages: int | None = None
    last_message_at: datetime | None = None


@dataclass(kw_only=True)
class ConversationMessages:
    """The messages read for one conversation, or why none of them may be loaded."""

    parent: MessageParent
    messages: list[Message] = field(default_factory=list)
    requests: int = 0
    size: int = 0  # bytes of the pages as read
    error: OctopushMismatchError | None = None


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def _stranger(parent: MessageParent, messages: list[Message]) -> str | None:
    """A phone number among the messages that is not the parent's recipient, if any."""
    if not parent.phone_number:
        return None
    expected = _digits(parent.phone_number)
    for message in messages:
        identifiers = message.get(IDENTIFIERS_FIELD)
        phone = identifiers.get(PHONE_FIELD) if isinstance(identifiers, dict) else None
        if isinstance(phone, str) and phone and _digits(phone) != expected:
            return phone
    return None


def check_messages(parent: MessageParent, messages: list[Message]) -> None:
    """Raise :class:`OctopushMismatchError` when the answer cannot be this conversation's."""
    filter_value = conversation_filter(parent.conversation_id)
    expected = parent.number_of_messages
    if expected is not None and len(messages) > expected + ARRIVAL_SLACK:
        raise OctopushMismatchError(
            f"conversation {parent.conversation_id!r} has {expected} messages but the API "
            f"answered {len(messages)} for conversation_id={filter_value!r}: it probably could "
            "not read that id and answered for other conversations; none of them is loaded"
        )
    stranger = _stranger(parent, messages)
    if stranger is not None:
        raise OctopushMismatchError(
            f"the API answered conversation_id={filter_value!r} with a message to another "
            f"phone number than the conversation's recipient: it probably could not read that "
            "id and answered for other conversations; none of them is loaded"
        )


class MessagesGuard:
    """The checks a client applies to the read of one conversation's messages.

    The client reads with :meth:`enough` as the stop condition and :attr:`max_pages` as the
    cap, then hands the stream to :meth:`collect`; nothing here reads on its own.
    """

    def __init__(self, parent: MessageParent) -> None:
        self.parent = parent
        self._received = 0
        expected = parent.number_of_messages
        # Each non-empty page holds at least one message and the read stops once it has enough:
        # this bound is never reached by a faithful answer.
        self.max_pages = None if expected is None else expected + ARRIVAL_SLACK + 1

    def enough(self, page: Page) -> bool:
        """Stop once it has enough, or at the first page that cannot be this conversation's:
        without a count, an API that ignores the id would otherwise serve every message of
        the account."""
        expected = self.parent.number_of_messages
        self._received += len(page.rows)
        full = expected is not None and self._received >= expected
        return full or _stranger(self.parent, page.rows) is not None

    def collect(self, stream: PageStream) -> ConversationMessages:
        """Every message of the conversation read by ``stream``, checked against its parent.

        A mismatch is returned (the caller decides what to do with it); any other error is
        raised, naming the conversation.
        """
        parent = self.parent
        unique: dict[str, Message] = {}
        size = 0
        try:
            for page in stream.pages():
                size += page.size
                for message in page.rows:
                    unique[message[MESSAGE_ID_FIELD]] = message
        except OctopushError as error:
            error.args = (f"messages of conversation {parent.conversation_id!r}: {error}",)
            raise
        result = ConversationMessages(
            parent=parent,
            messages=list(unique.values()),
            requests=stream.report.requests,
            size=size,
        )
        try:
            if stream.report.stop_reason is StopReason.MAX_PAGES:
                raise OctopushMismatchError(
                    f"the messages of conversation {parent.conversation_id!r} did not end within "
                    "max_pages pages; none of them is loaded (raise max_pages to load them)"
                )
            check_messages(parent, result.messages)
        except OctopushMismatchError as error:
            result.messages, result.error = [], error
        return result
