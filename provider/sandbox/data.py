"""Seeded, thread-safe store of fake Octopush conversations and their messages.

The connector has to be tested against data shaped like the real API's: optional keys, offsets
that change across daylight saving time, several ways of writing the same instant, and rows that
jump to the top while a client is paging. This store produces such data from a seed, so every
run, test and benchmark sees the same conversations.

Messages are not stored: a conversation's first ``number_of_messages`` messages are generated
when asked for, from its id, so a million conversations cost no more to build than before. Only
what changes later is kept: messages added by ``bump`` and delivery statuses that moved on.

Delivery receipts arrive over time, on the store's own clock (:attr:`ConversationStore.now`,
moved by :meth:`~ConversationStore.advance`): an outbound message is ``sent`` until its receipt
arrives, then ``delivered`` or ``not_delivered``. Most receipts come within a minute of sending,
the rest after one to twelve hours, and a fifth of the messages never get one (they stay
``sent``). Each message's outcome and delay follow from its id, so they are the same on every
run of a seed; history generated long before the clock shows its final statuses.
"""

from __future__ import annotations

import bisect
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pendulum

from octopush_provider.sandbox.filters import Match

__all__ = ["ANCHOR", "OFFSET_MODES", "ConversationStore"]

ANCHOR = pendulum.datetime(2026, 11, 1, 12, tz="UTC")
"""Fixed "now" of the sandbox: generated data ends just before it, new messages come after it."""

OFFSET_MODES = ("paris", "mixed")

_ANCHOR_TS = int(ANCHOR.timestamp())
# 240 days before the anchor reach back to early March 2026, across both Paris DST changes.
_WINDOW_SECONDS = 240 * 86_400
_MAX_THREAD_SECONDS = 30 * 86_400
_PARIS = "Europe/Paris"
_MIXED_ZONES = (_PARIS, "America/New_York", "UTC")
_TIMEZONES = {name: pendulum.timezone(name) for name in _MIXED_ZONES}

_FIRST_NAMES = (
    "Camille", "Léa", "Hugo", "Chloé", "Lucas", "Manon", "Théo", "Inès", "Louis", "Zoé",
    "Jules", "Élodie", "Nathan", "Sarah", "Gabriel", "Anaïs", "Raphaël", "Noémie", "Adam", "Maëlle",
)  # fmt: skip
_LAST_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
)  # fmt: skip
_SHORT_CODES = ("12345", "38200", "36111", "31007")
_RCS_AGENTS = ("octoshop@rcs.goog", "pharmalib@rcs.goog", "velocity@rcs.goog")
_MESSAGES = {
    "alert": (
        "Votre colis {n} arrive demain entre 8h et 12h.",
        "Rappel : rendez-vous le {d} à 14h30. Répondez OUI pour confirmer.",
        "Alerte : connexion inhabituelle sur votre compte (réf. {n}).",
    ),
    "marketing": (
        "-20% sur toute la boutique ce week-end ! Code PROMO{d}. STOP au 36111",
        "Nouveautés en magasin, venez les découvrir ! STOP au 36111",
    ),
    "support": (
        "Merci, votre demande #{n} a bien été prise en compte.",
        "Bonjour, pouvez-vous me rappeler ?",
        "C'est réglé, merci pour votre aide 🙏",
    ),
    "transactional": (
        "Votre code de vérification est {n}.",
        "Paiement de {d},90 € reçu, merci !",
    ),
}
_PURPOSES = tuple(_MESSAGES)
_REPLIES = ("Oui, merci !", "OK", "Je ne suis pas disponible, on peut décaler ?", "STOP")
# The status a message ends with; "sent" is a receipt that never comes.
_STATUSES = ("delivered", "delivered", "delivered", "sent", "not_delivered")
_PENDING_STATUS = "sent"
_FAST_RECEIPTS = 0.7  # the share of receipts that arrive within a minute of sending
_FAST_RECEIPT_SECONDS = (1, 60)
_SLOW_RECEIPT_SECONDS = (3_600, 12 * 3_600)


def _status_at(message_id: str, final: str, sent_at: int, now: int) -> str:
    """What a message's receipt says at ``now``: its final status once it has arrived."""
    if final == _PENDING_STATUS or now - sent_at >= _SLOW_RECEIPT_SECONDS[1]:
        return final
    draw = random.Random(f"receipt-{message_id}")
    fast = draw.random() < _FAST_RECEIPTS
    delay = draw.randint(*(_FAST_RECEIPT_SECONDS if fast else _SLOW_RECEIPT_SECONDS))
    return final if now >= sent_at + delay else _PENDING_STATUS


def render_instant(timestamp: int, zone: str) -> str:
    """Write a Unix timestamp the way the API does: ISO 8601, seconds, offset ("Z" for UTC)."""
    text = datetime.fromtimestamp(timestamp, _TIMEZONES[zone]).isoformat(timespec="seconds")
    return text[:-6] + "Z" if zone == "UTC" else text


def _copy(row: dict[str, Any]) -> dict[str, Any]:
    # Rows hold only str/int values and one nested dict: this is a deep copy, ~20x faster.
    details = row["recipient_details"]
    return {**row, "recipient_details": {**details} if type(details) is dict else details}


@dataclass(slots=True, eq=False)  # identity equality: list.remove() must find this very entry
class _Entry:
    row: dict[str, Any]
    last: int
    zone: str
    shuffle_key: float
    first: int = 0  # the generated thread: `base` messages from `first` to `base_last`
    base: int = 0
    base_last: int = 0
    base_text: str = ""
    added: list[tuple[int, str]] = field(default_factory=list)  # (instant, text) from bump
    statuses: dict[int, str] = field(default_factory=dict)  # index -> delivery status now

    def message(self, index: int, rng: random.Random, now: int) -> dict[str, Any]:
        """Message ``index`` (0-based, oldest first) as it is at ``now``; ``rng`` is this
        thread's, drawn in order."""
        row = self.row
        outbound = index == 0 or rng.random() < 0.6
        if index < self.base:
            span = self.base_last - self.first
            instant = self.first + span * index // max(self.base - 1, 1)
            if index == self.base - 1:
                text = self.base_text
            elif outbound:
                text = rng.choice(_MESSAGES[row["purpose"]]).format(n=index, d=10 + index % 19)
            else:
                text = rng.choice(_REPLIES)
        else:
            instant, text = self.added[index - self.base]
        final = rng.choice(_STATUSES)
        message_id = f"mid_{row['conversation_id']}_{index}"
        recipient = row["recipient_details"]
        if not isinstance(recipient, dict):  # rewritten by a test into something odd
            recipient = {}
        return {
            "message_id": message_id,
            "text": text,
            "direction": "outbound" if outbound else "inbound",
            "delivery_status": (
                self.statuses.get(index) or _status_at(message_id, final, instant, now)
                if outbound
                else None
            ),
            "channel": row["last_user_channel"],
            "user_identifier": recipient.get("phone_number"),
            "user_identifiers": {
                "phone_number": recipient.get("phone_number"),
                "email": recipient.get("email"),
                "facebook_page_id": recipient.get("facebook_id"),
            },
            "agent_assigned_to": row.get("agent_assigned_to") if outbound else None,
            "contact_name": recipient.get("name"),
            "created_at": render_instant(instant, self.zone),
        }

    def messages(self, now: int) -> list[dict[str, Any]]:
        """Every message of the conversation, oldest first, as the API would write them at
        ``now``."""
        rng = random.Random(self.row["conversation_id"])
        return [self.message(index, rng, now) for index in range(self.row["number_of_messages"])]


def _newest_first(entry: _Entry) -> tuple[int, str]:
    return (-entry.last, entry.row["conversation_id"])


class ConversationStore:
    """Conversations served newest-first by ``last_message_at`` (or shuffled), safe across threads.

    Mutations (``add_new``, ``bump``, ``bump_ids``, ``delete``) mimic a live account: new and
    active conversations move to the top, shifting everything else down; deleted ones vanish,
    shifting the rows below them up. ``add_at`` makes what a live account does on a bad day: a
    message stamped before the newest (it became visible late), two conversations at the same
    second, a server clock in the future. ``rewrite`` serves any JSON value in any field, as a
    server with a bug would.
    """

    def __init__(self, *, seed: int = 7, offsets: str = "paris", shuffled: bool = False) -> None:
        if offsets not in OFFSET_MODES:
            raise ValueError(f"offsets must be one of {OFFSET_MODES}, got {offsets!r}")
        self.seed = seed
        self.offsets = offsets
        self._shuffled = shuffled
        self._rng = random.Random(seed)
        # A separate stream for zones keeps the instants identical whatever the offsets mode.
        self._zone_rng = random.Random(f"zones-{seed}")
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._recency: list[_Entry] = []  # newest-first, then by id
        self._shuffled_order: list[_Entry] | None = None
        self._newest = _ANCHOR_TS - _WINDOW_SECONDS
        self._clock = _ANCHOR_TS

    @classmethod
    def generate(
        cls, count: int, *, seed: int = 7, offsets: str = "paris", shuffled: bool = False
    ) -> ConversationStore:
        """Build a store of ``count`` conversations spread over the 240 days before ``ANCHOR``."""
        if not 0 <= count <= _WINDOW_SECONDS:
            raise ValueError(f"count must be between 0 and {_WINDOW_SECONDS}, got {count}")
        store = cls(seed=seed, offsets=offsets, shuffled=shuffled)
        # Sampling distinct seconds makes every last_message_at unique, so order is unambiguous.
        for offset in store._rng.sample(range(_WINDOW_SECONDS), count):
            store._recency.append(store._insert(_ANCHOR_TS - 1 - offset))
        store._recency.sort(key=_newest_first)
        if store._recency:
            store._newest = store._recency[0].last
        return store

    @property
    def shuffled(self) -> bool:
        """Serve rows in a seeded random order instead of newest-first."""
        return self._shuffled

    @shuffled.setter
    def shuffled(self, value: bool) -> None:
        with self._lock:
            self._shuffled = value

    def __len__(self) -> int:
        return len(self._entries)

    def page(self, page: int, per_page: int) -> list[dict[str, Any]]:
        """Return copies of the rows of 1-based ``page``, in served order; ``[]`` past the end."""
        if page < 1 or per_page < 1:
            raise ValueError(f"page and per_page must be >= 1, got {page} and {per_page}")
        start = (page - 1) * per_page
        with self._lock:
            served = self._shuffled_entries() if self._shuffled else self._recency
            return [_copy(entry.row) for entry in served[start : start + per_page]]

    def snapshot(self) -> list[dict[str, Any]]:
        """Return copies of all rows, newest-first whatever the served order."""
        with self._lock:
            return [_copy(entry.row) for entry in self._recency]

    def messages(
        self, conversation_id: str, match: Match | None = None
    ) -> list[dict[str, Any]] | None:
        """The messages of one conversation, oldest first; None for an unknown id, none when
        the conversation fails ``match``."""
        with self._lock:
            entry = self._entries.get(conversation_id)
            if entry is None:
                return None
            return entry.messages(self._clock) if match is None or match(entry.row) else []

    def messages_page(
        self, page: int, per_page: int, match: Match | None = None
    ) -> list[dict[str, Any]]:
        """A page of the messages of every conversation (or of those ``match`` selects), newest
        conversation first: what the endpoint answers to contact filters or when it ignores its
        filters. Linear in the account; for tests."""
        start, end = (page - 1) * per_page, page * per_page
        seen, served = 0, []
        with self._lock:
            for entry in self._recency:
                if match is not None and not match(entry.row):
                    continue
                count = entry.row["number_of_messages"]
                if seen + count > start:
                    served.extend(entry.messages(self._clock)[max(start - seen, 0) : end - seen])
                seen += count
                if seen >= end:
                    break
        return served

    def deliver(self, n: int) -> list[str]:
        """Move ``n`` outbound messages from "sent" to "delivered", as delivery receipts do, without
        touching their conversations; return the message ids."""
        changed: list[str] = []
        with self._lock:
            for entry in self._rng.sample(self._recency, len(self._recency)):
                if len(changed) >= _check_count(n):
                    break
                for index, message in enumerate(entry.messages(self._clock)):
                    if message["delivery_status"] == _PENDING_STATUS:
                        entry.statuses[index] = "delivered"
                        changed.append(message["message_id"])
                        break
        return changed

    @property
    def now(self) -> datetime:
        """The store's clock, in UTC: receipts due by then have arrived; new messages follow it."""
        with self._lock:
            return datetime.fromtimestamp(self._clock, UTC)

    def advance(self, seconds: float) -> datetime:
        """Move the clock ``seconds`` on, letting the receipts due meanwhile arrive; the new
        time. Conversations do not move: a receipt is not a message."""
        if seconds < 0:
            raise ValueError(f"the clock only moves forward, got {seconds} seconds")
        with self._lock:
            self._clock += int(seconds)
        return self.now

    @property
    def newest(self) -> datetime:
        """The ``last_message_at`` the next new message would follow, in UTC."""
        with self._lock:
            return datetime.fromtimestamp(self._newest, UTC)

    def add_new(self, n: int) -> list[str]:
        """Start ``n`` conversations newer than all others, one second apart; return their ids."""
        with self._lock:
            return [
                self._place(self._insert(self._next_instant(), fresh=True))
                for _ in range(_check_count(n))
            ]

    def add_at(self, moments: Iterable[datetime]) -> list[str]:
        """Start a conversation at each instant, in its place newest-first; return their ids.

        The instants may be older than the newest (a late message), equal to another's, or in
        the future; they do not move the instant that :meth:`add_new` and :meth:`bump` follow.
        """
        with self._lock:
            return [self._place(self._insert(int(m.timestamp()), fresh=True)) for m in moments]

    def bump(self, n: int) -> list[str]:
        """Give ``n`` conversations, preferably older ones, a new message; return their ids."""
        with self._lock:
            ids = [entry.row["conversation_id"] for entry in self._recency]
            n = min(_check_count(n), len(ids))
            newer, older = ids[: len(ids) // 2], ids[len(ids) // 2 :]
            picked = self._rng.sample(older, min(n, len(older)))
            picked += self._rng.sample(newer, n - len(picked))
            return self.bump_ids(picked)

    def rewrite(self, conversation_id: str, fields: dict[str, Any]) -> None:
        """Serve these values for these fields of a conversation from now on; it does not move.

        Any value orjson writes; ``orjson.Fragment(b"...")`` serves raw JSON, such as an integer
        of 30 digits that no Python value would serialise to.
        """
        with self._lock:
            self._entries[conversation_id].row.update(fields)

    def bump_ids(self, ids: Iterable[str]) -> list[str]:
        """Give each conversation in ``ids`` a new message, moving it to the top; return the ids."""
        bumped = list(ids)
        with self._lock:
            self._check_known(bumped)
            for cid in bumped:
                entry = self._entries[cid]
                entry.last = self._next_instant()
                entry.row["last_message_at"] = render_instant(entry.last, entry.zone)
                entry.row["number_of_messages"] += 1
                entry.row["last_message"] = self._message(entry.row["purpose"])
                entry.added.append((entry.last, entry.row["last_message"]))
                self._recency.remove(entry)
                self._place(entry)
        return bumped

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete the conversations in ``ids``, moving the rows below them up; return the ids."""
        deleted = list(ids)
        with self._lock:
            self._check_known(deleted)
            for cid in deleted:
                self._recency.remove(self._entries.pop(cid))
            self._shuffled_order = None
        return deleted

    def _check_known(self, ids: list[str]) -> None:
        missing = [cid for cid in ids if cid not in self._entries]
        if missing:
            raise KeyError(f"unknown conversation ids: {missing}")

    def _place(self, entry: _Entry) -> str:
        """Put an entry in its place in the served order; return its id."""
        bisect.insort(self._recency, entry, key=_newest_first)
        self._shuffled_order = None
        conversation_id: str = entry.row["conversation_id"]
        return conversation_id

    def _insert(self, last: int, *, fresh: bool = False) -> _Entry:
        """Create one conversation; a ``fresh`` one has just started (a single message)."""
        rng = self._rng
        cid = f"{rng.getrandbits(96):024x}"
        while cid in self._entries:
            cid = f"{rng.getrandbits(96):024x}"
        channel = rng.choice(("sms", "rcs"))
        purpose = rng.choice(_PURPOSES)
        messages = 1 if fresh or rng.random() < 0.3 else rng.randint(2, 40)
        first = last if messages == 1 else last - rng.randint(60, _MAX_THREAD_SECONDS)
        agent = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
        zone = _PARIS if self.offsets == "paris" else self._zone_rng.choice(_MIXED_ZONES)
        row: dict[str, Any] = {
            "conversation_id": cid,
            "last_user_channel": channel,
            "recipient_details": {
                "phone_number": f"+33{rng.choice('67')}{rng.randrange(10**8):08d}",
                "name": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
            },
        }
        if rng.random() < 0.5:
            row["agent_assigned_to"] = agent
        row |= {
            "from": rng.choice(_SHORT_CODES if channel == "sms" else _RCS_AGENTS),
            "first_message_at": render_instant(first, zone),
            "last_message_at": render_instant(last, zone),
            "last_message": self._message(purpose),
            "purpose": purpose,
            "color": rng.randint(0, 5),
            "number_of_messages": messages,
        }
        entry = _Entry(row, last, zone, rng.random(), first, messages, last, row["last_message"])
        self._entries[cid] = entry
        return entry

    def _message(self, purpose: str) -> str:
        template = self._rng.choice(_MESSAGES[purpose])
        return template.format(n=self._rng.randrange(10**5, 10**6), d=self._rng.randint(10, 28))

    def _next_instant(self) -> int:
        self._newest = max(self._newest, self._clock) + 1
        return self._newest

    def _shuffled_entries(self) -> list[_Entry]:
        if self._shuffled_order is None:
            order = sorted(self._recency, key=lambda e: e.shuffle_key)
            if len(order) > 1 and order == self._recency:  # a shuffle must not be newest-first
                order[0], order[1] = order[1], order[0]
            self._shuffled_order = order
        return self._shuffled_order


def _check_count(n: int) -> int:
    if n < 0:
        raise ValueError(f"a number of conversations must be >= 0, got {n}")
    return n
