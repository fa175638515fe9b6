"""Delivery receipts: each run re-reads exactly the conversations whose outbound messages wait.

The model. An outbound message's ``delivery_status`` changes after sending, when its delivery
receipt arrives, and the change does not move its conversation: ``last_message_at`` stays, so an
incremental run does not read that conversation again. A blanket lookback (``lag_seconds`` of a
day) lands such changes by re-reading every conversation active in the last day on every run,
waiting or not, and misses receipts later than that.

We know which messages wait: we loaded them. After a conversation's messages are read, if one of
its outbound messages has a status that is not final (see :data:`DEFAULT_FINAL_STATUSES`), the
conversation is *tracked* in the ``messages`` resource's state: its id, what its answer is
checked against, and the ids and statuses of its waiting messages. Every run reads the tracked
conversations besides the changed ones, through the same reader (paging, answer check,
concurrency): one request each for a conversation that fits in a page. The read decides: once
none of its messages waits, a conversation leaves the set. A run with nothing tracked sends
nothing extra. The set is resource state, committed with the load: a run killed before its load
leaves it as the last load did, and a full refresh, which drops the source's state, empties it.

Bounds. A receipt that never comes would be waited for forever, so waiting ends with age: a
message sent more than ``window`` ago no longer waits, and a conversation with no message left
waiting leaves the set (*aged out*). Age is measured on the server's clock, the newest
``last_message_at`` seen (a client's wrong clock, or a sandbox's frozen one, changes nothing),
and is never less than the wall-clock time since the conversation was first tracked (on a quiet
account the newest message stays, yet time passes). A message's sending time is its earliest
timestamp field (the reference's example is cut off before any; the sandbox calls it
``created_at``), else its conversation's ``last_message_at``, which is never earlier. So an old
message that never got its receipt does not bring its conversation back when a new message
arrives. Past ``max_conversations``, the oldest are dropped with a warning and counted.

The final statuses are an assumption: the API reference shows the field but not its values; its
delivery-receipt webhooks say ``DELIVERED``, ``NOT_DELIVERED`` and ``BLACKLISTED_NUMBER``, and the
sandbox ``sent``, ``delivered`` and ``not_delivered``. Statuses compare ignoring case; anything
else (``sent``, a status we do not know, or none on an outbound message) waits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from octopush_provider.exceptions import OctopushConfigError
from octopush_provider.messages import MESSAGE_ID_FIELD, Message, MessageParent

__all__ = [
    "DEFAULT_FINAL_STATUSES",
    "DEFAULT_MAX_CONVERSATIONS",
    "DEFAULT_WINDOW_SECONDS",
    "ReceiptFigures",
    "ReceiptPolicy",
    "ReceiptTracker",
]

logger = logging.getLogger(__name__)

DEFAULT_FINAL_STATUSES = ("delivered", "not_delivered", "blacklisted_number")
# Most receipts come within seconds, operators retry for a day or two: three days covers them.
DEFAULT_WINDOW_SECONDS = 3 * 86_400.0
# A run re-reads at most this many conversations for their receipts (a request each).
DEFAULT_MAX_CONVERSATIONS = 2_000

_OUTBOUND = "outbound"
_STATE_KEY = "receipts"


@dataclass(frozen=True, kw_only=True)
class ReceiptPolicy:
    """Which statuses are final, and how long and how many conversations to wait for."""

    window: timedelta = timedelta(seconds=DEFAULT_WINDOW_SECONDS)
    max_conversations: int = DEFAULT_MAX_CONVERSATIONS
    final_statuses: frozenset[str] = frozenset(DEFAULT_FINAL_STATUSES)
    clock_skew: timedelta = timedelta(0)

    @classmethod
    def build(
        cls,
        *,
        window_seconds: float,
        max_conversations: int,
        final_statuses: Sequence[str],
        clock_skew_seconds: float,
    ) -> ReceiptPolicy:
        """A policy from the source's settings; a bad one is named in an OctopushConfigError."""
        if isinstance(window_seconds, bool) or not isinstance(window_seconds, int | float):
            raise OctopushConfigError(
                f"receipts_window_seconds must be a number of seconds, got {window_seconds!r}"
            )
        if window_seconds < 0:
            raise OctopushConfigError(f"receipts_window_seconds must be >= 0, got {window_seconds}")
        if isinstance(max_conversations, bool) or not (
            isinstance(max_conversations, int) and max_conversations >= 1
        ):
            raise OctopushConfigError(
                f"receipts_max_conversations must be a whole number >= 1, got {max_conversations!r}"
            )
        statuses = (final_statuses,) if isinstance(final_statuses, str) else final_statuses
        if not statuses or not all(isinstance(s, str) and s.strip() for s in statuses):
            raise OctopushConfigError(
                f"final_statuses must be a list of status names, got {final_statuses!r}"
            )
        return cls(
            window=timedelta(seconds=window_seconds),
            max_conversations=max_conversations,
            final_statuses=frozenset(status.strip().lower() for status in statuses),
            clock_skew=timedelta(seconds=clock_skew_seconds),
        )

    @property
    def enabled(self) -> bool:
        """A window of 0 turns tracking off: statuses land only when conversations are read."""
        return self.window > timedelta(0)

    def waiting(self, messages: Iterable[Message]) -> dict[str, str | None]:
        """The outbound messages whose status is not final: id to status."""
        found: dict[str, str | None] = {}
        for message in messages:
            direction = message.get("direction")
            if not (isinstance(direction, str) and direction.lower() == _OUTBOUND):
                continue
            status = message.get("delivery_status")
            if not (isinstance(status, str) and status.lower() in self.final_statuses):
                found[message[MESSAGE_ID_FIELD]] = status if isinstance(status, str) else None
        return found


@dataclass(kw_only=True)
class ReceiptFigures:
    """What one run did for receipts; ``waiting_*`` is the set as the run leaves it."""

    requests: int = 0  # spent on re-reading tracked conversations
    statuses_moved: int = 0  # waiting messages whose status changed when read again
    aged_out: int = 0
    over_limit: int = 0
    waiting_conversations: int = 0
    waiting_messages: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def total(cls, runs: Iterable[Mapping[str, Any]]) -> ReceiptFigures:
        """The figures of several runs (the slices of a first load): the set as the last left it."""
        summed = cls()
        for run in runs:
            summed.requests += run.get("requests", 0)
            summed.statuses_moved += run.get("statuses_moved", 0)
            summed.aged_out += run.get("aged_out", 0)
            summed.over_limit += run.get("over_limit", 0)
            summed.waiting_conversations = run.get("waiting_conversations", 0)
            summed.waiting_messages = run.get("waiting_messages", 0)
        return summed

    def line(self) -> str:
        return (
            f"  receipts: {self.statuses_moved} statuses moved; {self.waiting_messages} messages "
            f"of {self.waiting_conversations} conversations still wait; {self.aged_out} aged out"
            + (f", {self.over_limit} dropped over the limit" if self.over_limit else "")
            + f"; {self.requests} requests to read them again"
        )


@dataclass(kw_only=True)
class _Tracked:
    at: datetime  # when its newest waiting message was sent
    since: datetime  # wall clock when first tracked
    phone_number: str | None
    number_of_messages: int | None
    waiting: dict[str, str | None] = field(default_factory=dict)


class ReceiptTracker:
    """The tracked conversations of one resource state, for one run.

    ``now`` is the wall clock at the start of the run. Feed it every conversation read
    (:meth:`observe`), ask it once for those to read again (:meth:`due`), and keep what
    :meth:`finish` returns. ``figures`` carries the counts across the batches of a run.
    """

    def __init__(
        self,
        state: dict[str, Any],
        policy: ReceiptPolicy,
        *,
        now: datetime,
        figures: ReceiptFigures | None = None,
    ) -> None:
        self._policy = policy
        self._now = now
        self._state = state.setdefault(_STATE_KEY, {"newest": None, "tracked": {}})
        self._tracked: dict[str, dict[str, Any]] = self._state["tracked"]
        self.figures = figures if figures is not None else ReceiptFigures()

    def observe(self, parent: MessageParent, messages: list[Message]) -> None:
        """A conversation read in full: track it while one of its messages waits, else drop it."""
        last = parent.last_message_at
        if last is not None and last <= self._now + self._policy.clock_skew:
            newest = self._state["newest"]
            self._state["newest"] = last if newest is None else max(newest, last)
        cid = parent.conversation_id
        before = self._tracked.pop(cid, None)
        if before is not None:
            statuses = {m[MESSAGE_ID_FIELD]: m.get("delivery_status") for m in messages}
            self.figures.statuses_moved += sum(
                mid in statuses and statuses[mid] != status
                for mid, status in before["waiting"].items()
            )
        waiting = self._policy.waiting(messages) if self._policy.enabled else {}
        since = before["since"] if before is not None else self._now
        sent = {
            message[MESSAGE_ID_FIELD]: moment
            for message in messages
            if message[MESSAGE_ID_FIELD] in waiting
            and (moment := _sent_at(message, last)) is not None
            and self._age(moment, since) <= self._policy.window
        }
        if not sent:
            if before is not None and before["waiting"].keys() & waiting.keys():
                self.figures.aged_out += 1  # what it waited for still waits, but too long
            return
        entry = _Tracked(
            at=max(sent.values()),
            since=since,
            phone_number=parent.phone_number,
            number_of_messages=parent.number_of_messages,
            waiting={mid: waiting[mid] for mid in sent},
        )
        self._tracked[cid] = asdict(entry)

    def due(self, *, read: Iterable[str]) -> list[MessageParent]:
        """The tracked conversations to read again, but those in ``read``; drops the aged and,
        past the limit, the oldest."""
        if not self._policy.enabled:  # turned off since the last run: wait for nothing
            self._tracked.clear()
            return []
        for cid, entry in list(self._tracked.items()):
            if self._age(entry["at"], entry["since"]) > self._policy.window:
                del self._tracked[cid]
                self.figures.aged_out += 1
        excess = len(self._tracked) - self._policy.max_conversations
        if excess > 0:
            oldest = sorted(self._tracked, key=lambda cid: (self._tracked[cid]["at"], cid))
            for cid in oldest[:excess]:
                del self._tracked[cid]
            self.figures.over_limit += excess
            logger.warning(
                "Octopush receipts: %d conversations wait for delivery receipts, more than "
                "receipts_max_conversations=%d; the %d oldest are no longer read again",
                excess + self._policy.max_conversations,
                self._policy.max_conversations,
                excess,
            )
        skip = set(read)
        return [
            MessageParent(
                conversation_id=cid,
                phone_number=entry["phone_number"],
                number_of_messages=entry["number_of_messages"],
                last_message_at=entry["at"],
            )
            for cid, entry in self._tracked.items()
            if cid not in skip
        ]

    def finish(self) -> ReceiptFigures:
        """The run's figures, the set as it stands; logged."""
        figures = self.figures
        figures.waiting_conversations = len(self._tracked)
        figures.waiting_messages = sum(len(entry["waiting"]) for entry in self._tracked.values())
        if figures.requests or figures.aged_out or figures.over_limit:
            logger.info(
                "Octopush receipts: %d statuses moved; %d messages of %d conversations still "
                "wait; %d aged out; %d requests",
                figures.statuses_moved,
                figures.waiting_messages,
                figures.waiting_conversations,
                figures.aged_out,
                figures.requests,
            )
        return figures

    def _age(self, sent_at: datetime, since: datetime) -> timedelta:
        """On the server's clock, never less than the wall-clock time it has been tracked."""
        newest: datetime | None = self._state["newest"]
        on_server = newest - sent_at if newest is not None else timedelta(0)
        return max(on_server, self._now - _aware(since))


def _sent_at(message: Message, last_message_at: datetime | None) -> datetime | None:
    """When a message was sent: its earliest timestamp, else its conversation's last message.

    The API's message timestamp has no documented name; :func:`~octopush_provider.messages.
    parse_message` turns every field holding an ISO 8601 instant into a datetime.
    """
    moments = [value for value in message.values() if isinstance(value, datetime)]
    return min(moments) if moments else last_message_at


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
