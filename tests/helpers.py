"""Small helpers shared by the tests."""

from __future__ import annotations

from typing import Any


def ids(rows: list[dict[str, Any]]) -> list[str]:
    """The conversation ids of rows, in order."""
    return [row["conversation_id"] for row in rows]
