"""Keeps secrets and oversized bodies out of log lines and error messages.

A key can come back written differently from how it was sent: percent-encoded in a URL (a
redirect's ``Location``, a proxy's error page), with ``+`` for spaces, or with lower-case hex.
Every such spelling is masked, not only the key as it is.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

MASK = "***"
EXCERPT_LENGTH = 300

_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def mask(secret: str) -> str:
    """Show that a secret is set without showing it."""
    return MASK if secret else "<empty>"


def spellings(secret: str) -> list[str]:
    """The secret as it is and in the forms URL encoding gives it, longest first."""
    encoded = {quote(secret, safe=""), quote(secret), quote_plus(secret), quote_plus(secret, "/")}
    lowered = {_PERCENT_ESCAPE.sub(lambda escape: escape[0].lower(), form) for form in encoded}
    return sorted({secret} | encoded | lowered, key=len, reverse=True)


def redact(text: str, *, secrets: tuple[str, ...]) -> str:
    """``text`` with every spelling of every secret masked."""
    for secret in secrets:
        if secret:
            for spelling in spellings(secret):
                text = text.replace(spelling, MASK)
    return text


def excerpt(
    body: str | bytes, *, secrets: tuple[str, ...] = (), limit: int = EXCERPT_LENGTH
) -> str:
    """A one-line view of the start of a response body, every secret masked.

    Only the start of the body is decoded (an answer may be megabytes long), and a secret that
    this window cuts in two is dropped with the window's tail, never shown in part.
    """
    margin = max((len(spelling) for secret in secrets for spelling in spellings(secret)), default=0)
    window = body[: 4 * limit + margin]
    text = window.decode("utf-8", errors="replace") if isinstance(window, bytes) else window
    text = redact(text, secrets=secrets)
    cut = len(window) < len(body)
    if cut:
        text = text[: len(text) - margin]
    text = " ".join(text.split())
    if cut or len(text) > limit:
        unit = "bytes" if isinstance(body, bytes) else "characters"
        text = text[:limit] + f"... (of {len(body)} {unit})"
    return text or "<empty body>"
