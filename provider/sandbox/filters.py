"""How the sandbox's messages endpoint reads its contact filters: leniently, as the reference says.

The reference documents ``phone_number``, ``email``, ``facebook_id`` (format ``fid_{id}``) and
``contact`` (a combination of those) next to ``conversation_id``, and says a parameter the API
cannot read is ignored while the request still runs. So here: a filter whose value cannot be read
(a phone without 6 digits, an e-mail without ``@`` and a dot, a Facebook id without ``fid_``) is
ignored, and the answer is what it would be without it. A readable filter selects the
conversations whose recipient (``recipient_details``) has that identifier; ``contact`` is a
comma-separated mix of the three and matches any of them; several readable filters all apply.
What matches nothing answers as the list does past its end: ``[]``, or a 404 with
``past_end="404"``. The sandbox's recipients have an e-mail or Facebook id only when a test
writes one (``ConversationStore.rewrite``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Match = Callable[[Mapping[str, Any]], bool]
Identifier = tuple[str, str]  # (filter name, value as compared)

_FACEBOOK = re.compile(r"fid_(\w+)")
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")
_MIN_PHONE_DIGITS = 6  # fewer digits than this is not a phone number the API could look up
FILTERS = ("phone_number", "email", "facebook_id")


def read_identifier(raw: str) -> Identifier | None:
    """An identifier as the API would read it: Facebook id, e-mail or phone; None if unreadable.

    Phones compare by their digits (``"+33 6 12 34 56 78"`` is ``"33612345678"``), e-mails
    ignoring case.
    """
    value = raw.strip()
    if facebook := _FACEBOOK.fullmatch(value):
        return "facebook_id", facebook.group(1)
    if _EMAIL.fullmatch(value):
        return "email", value.lower()
    digits = "".join(ch for ch in value if ch.isdigit())
    return ("phone_number", digits) if len(digits) >= _MIN_PHONE_DIGITS else None


def _identifiers(row: Mapping[str, Any]) -> set[Identifier]:
    """The identifiers of a conversation's recipient, read as the filters are."""
    recipient = row.get("recipient_details")
    if not isinstance(recipient, Mapping):
        return set()
    facebook = recipient.get("facebook_id")
    given = {
        "phone_number": recipient.get("phone_number"),
        "email": recipient.get("email"),
        "facebook_id": None if facebook is None else f"fid_{facebook}",
    }
    found = set()
    for name, value in given.items():
        identifier = read_identifier(value) if isinstance(value, str) else None
        if identifier is not None and identifier[0] == name:
            found.add(identifier)
    return found


def contact_filter(query: Mapping[str, str]) -> Match | None:
    """What the readable contact filters of ``query`` select; None when none is readable."""
    wanted: list[set[Identifier]] = []  # a conversation must have one of each set
    for name in FILTERS:
        identifier = read_identifier(query.get(name, ""))
        if identifier is not None and identifier[0] == name:  # an e-mail in phone_number: unread
            wanted.append({identifier})
    parts = (read_identifier(part) for part in query.get("contact", "").split(","))
    if contact := {identifier for identifier in parts if identifier is not None}:
        wanted.append(contact)
    if not wanted:
        return None
    return lambda row: all(_identifiers(row) & one for one in wanted)
