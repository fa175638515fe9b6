"""What differs between the API's lists: where they are, what they are asked, how a row is read.

The conversations list and each conversation's messages are read by the same machine (retries,
throttle, errors, paging); an :class:`Endpoint` is all that tells them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Parse = Callable[..., list[dict[str, Any]]]
"""``parse(items, page=n)``: the JSON array of a page to clean records, or a typed error."""


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """One list endpoint: its URL, extra query parameters, row parser and row key."""

    url: str
    parse: Parse
    id_field: str
    params: Mapping[str, str] = field(default_factory=dict)
