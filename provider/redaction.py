"""Keeps secrets and oversized bodies out of log lines and error messages."""

from __future__ import annotations

MASK = "***"
EXCERPT_LENGTH = 300


def mask(secret: str) -> str:
    """Show that a secret is set without showing it."""
    return MASK if secret else "<empty>"


def excerpt(
    body: str | bytes, *, secrets: tuple[str, ...] = (), limit: int = EXCERPT_LENGTH
) -> str:
    """A one-line, truncated view of a response body with every secret masked."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more characters)"
    return text or "<empty body>"
