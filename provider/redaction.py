"""Keeps secrets and oversized bodies out of log lines and error messages.

A key can come back written differently from how it was sent: percent-encoded in a URL (a
redirect's ``Location``, a proxy's error page), with ``+`` for spaces, or with lower-case hex;
escaped in a JSON body that echoes the request (``\\/`` for ``/``, ``\\u00e9`` for ``é``).
Every such spelling is masked, not only the key as it is, and :func:`scrub_chain` masks every
error chained to ours, which dlt writes to its trace on disk too.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus

MASK = "***"
EXCERPT_LENGTH = 300

_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")
_UNICODE_ESCAPE = re.compile(r"\\u[0-9a-f]{4}")


def mask(secret: str) -> str:
    """Show that a secret is set without showing it."""
    return MASK if secret else "<empty>"


def _json_spellings(secret: str) -> set[str]:
    """The secret inside a JSON string: escaped as JSON encoders do, with or without ``\\/``
    (PHP's way), non-ASCII kept or as ``\\uXXXX`` in either case of hex."""
    forms = {json.dumps(secret, ensure_ascii=ascii)[1:-1] for ascii in (True, False)}
    forms |= {form.replace("/", "\\/") for form in forms}
    upper = {_UNICODE_ESCAPE.sub(lambda escape: "\\u" + escape[0][2:].upper(), f) for f in forms}
    return forms | upper


def spellings(secret: str) -> list[str]:
    """The secret as it is and in the forms URL or JSON encoding gives it, longest first."""
    encoded = {quote(secret, safe=""), quote(secret), quote_plus(secret), quote_plus(secret, "/")}
    lowered = {_PERCENT_ESCAPE.sub(lambda escape: escape[0].lower(), form) for form in encoded}
    return sorted({secret} | encoded | lowered | _json_spellings(secret), key=len, reverse=True)


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


def scrub_chain(error: BaseException, *, secrets: tuple[str, ...]) -> None:
    """Mask every spelling of the secrets in each error chained to ``error``.

    dlt keeps the message of each error of a chain (``__cause__`` and ``__context__``) in the
    trace it writes next to the pipeline; ``error`` itself, ours, is worded with masked parts.
    """
    seen = {id(error)}
    pending = [error.__cause__, error.__context__]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.args = tuple(
            redact(arg, secrets=secrets) if isinstance(arg, str) else arg for arg in current.args
        )
        pending += [current.__cause__, current.__context__]
