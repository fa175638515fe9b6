"""Pseudonymise or drop personal columns before a table reaches dlt.

Conversations and messages carry phone numbers, names, e-mail addresses and what people wrote.
A warehouse copy should hold as little of that as it can, so the source rewrites each Arrow
table on its way to dlt: nothing raw is ever extracted, so nothing raw can turn up in load
files, the pipeline folder, the destination or dlt's own tables.

- A **hashed** column holds the HMAC-SHA256 of each value's UTF-8 text, keyed by a secret, as
  lowercase hex: the same phone number gives the same value in every table and every run, so
  joins and counts still work, but nobody can reverse it by hashing every phone number (as they
  could a plain SHA-256) without the secret. Nulls stay null; the column stays text.
- A **dropped** column is removed from the data and from dlt's column hints, so the destination
  never gets it.

A policy names columns as they land (``recipient_details__phone_number``, ``text``), and one
name applies to every table that has it. The source state keeps what the table was loaded with
(the hashed and dropped columns and a fingerprint of the secret, an HMAC of a fixed label,
never the secret): a run with another secret, or other columns, would leave raw and hashed, or
differently hashed, values side by side, so it is refused unless it is a full refresh.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns

from octopush_dlt.arrow_values import string_array
from octopush_dlt.errors import OctopushPrivacyError
from octopush_dlt.tables import PROTECTED, TABLES

__all__ = ["PrivacyPolicy", "hmac_hex"]

STATE_KEY = "privacy"
_FINGERPRINT_LABEL = b"octopush-dlt hash_secret fingerprint v1"
_SECRET_HINT = (
    "set hash_secret under [sources.octopush] in .dlt/secrets.toml, "
    "or as SOURCES__OCTOPUSH__HASH_SECRET"
)


def hmac_hex(secret: bytes, text: str) -> str:
    """The pseudonym of one value: HMAC-SHA256 of its UTF-8 text, lowercase hex."""
    return hmac.digest(secret, text.encode(), hashlib.sha256).hex()


def _names(value: Iterable[str] | str | None, setting: str) -> tuple[str, ...]:
    """Column names from a list (or one comma-separated string, as an environment variable)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise OctopushPrivacyError(f"{setting} must be a list of column names, got {item!r}")
        names.append(item.strip())
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, kw_only=True)
class PrivacyPolicy:
    """Which columns to hash and drop, and the secret that keys the hash."""

    hash_columns: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    secret: bytes | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        *,
        hash_columns: Iterable[str] | str | None,
        drop_columns: Iterable[str] | str | None,
        hash_secret: str | None,
        tables: Mapping[str, Collection[str]] | None = None,
        protected: Collection[str] = PROTECTED,
    ) -> PrivacyPolicy:
        """Check the settings against the tables' columns (``{table: columns}``).

        ``protected`` columns (keys, cursors) can be neither hashed nor dropped. Both default
        to the registry's (:mod:`octopush_dlt.tables`).
        """
        if tables is None:
            tables = {table.name: table.schema.names for table in TABLES}
        hashed = _names(hash_columns, "hash_columns")
        dropped = _names(drop_columns, "drop_columns")
        both = sorted(set(hashed) & set(dropped))
        if both:
            raise OctopushPrivacyError(f"columns both hashed and dropped: {', '.join(both)}")
        refused = sorted(set(protected) & {*hashed, *dropped})
        if refused:
            raise OctopushPrivacyError(
                f"{', '.join(refused)} cannot be hashed or dropped: the loader needs them as "
                "they are (primary keys and cursors)"
            )
        known = set().union(*tables.values()) if tables else set()
        unknown = [name for name in (*hashed, *dropped) if name not in known]
        if unknown:
            listing = "; ".join(
                f"{table}: {', '.join(columns)}" for table, columns in sorted(tables.items())
            )
            raise OctopushPrivacyError(
                f"no table has the column(s) {', '.join(unknown)}; the columns are {listing}"
            )
        if hashed and not hash_secret:
            raise OctopushPrivacyError(
                f"hash_columns needs a secret to key the hash: {_SECRET_HINT}"
            )
        secret = str(hash_secret).encode() if hash_secret else None
        return cls(hash_columns=hashed, drop_columns=dropped, secret=secret if hashed else None)

    @property
    def fingerprint(self) -> str | None:
        """Tells secrets apart without revealing them: an HMAC of a fixed label."""
        if self.secret is None:
            return None
        return hmac.digest(self.secret, _FINGERPRINT_LABEL, hashlib.sha256).hex()[:32]

    def record(self) -> dict[str, Any]:
        """What the state keeps about this policy."""
        return {
            "hash_columns": sorted(self.hash_columns),
            "drop_columns": sorted(self.drop_columns),
            "secret_fingerprint": self.fingerprint,
        }

    def check_state(self, state: MutableMapping[str, Any], *, loaded: bool) -> None:
        """Refuse to load differently from earlier runs; then remember this policy.

        ``state`` is the source state, emptied by a full refresh; ``loaded`` says whether a
        load happened before. Loaded, with no policy recorded, means loaded before this layer
        existed: raw.
        """
        previous = state.get(STATE_KEY)
        if previous is None and loaded:
            previous = PrivacyPolicy().record()
        current = self.record()
        if previous is not None and previous != current:
            raise OctopushPrivacyError(_change_message(previous, current))
        state[STATE_KEY] = current

    def touches(self, column: str) -> bool:
        """True when ``column`` is hashed or dropped."""
        return _covered(column, (*self.hash_columns, *self.drop_columns))

    def hints(self, columns: TTableSchemaColumns) -> TTableSchemaColumns:
        """dlt column hints without the dropped columns."""
        return {name: hint for name, hint in columns.items() if name not in self.drop_columns}

    def apply(self, table: pa.Table) -> pa.Table:
        """The table with its hashed columns replaced and its dropped columns removed.

        A column also gets the treatment of the columns it holds or that hold it: the whole
        nested object landed as JSON text when the API sent no object (``recipient_details``
        for ``recipient_details__phone_number``), a value of another type landed beside the
        column (``last_message__v_text``).
        """
        names = table.schema.names
        table = table.drop_columns([name for name in names if _covered(name, self.drop_columns)])
        if self.secret is None:
            return table
        for index, name in enumerate(table.schema.names):
            if _covered(name, self.hash_columns):
                pseudonyms = _hash_column(table.column(index), self.secret)
                table = table.set_column(index, pa.field(name, pa.string()), pseudonyms)
        return table


def _covered(column: str, names: Iterable[str]) -> bool:
    """True when ``column`` is one of ``names``, holds one of them, or is held by one."""
    return any(
        column == name or name.startswith(column + "__") or column.startswith(name + "__")
        for name in names
    )


def _hash_column(column: pa.ChunkedArray, secret: bytes) -> pa.ChunkedArray:
    """Hash each distinct value once: a phone number repeats across a conversation's rows."""
    chunks = []
    for chunk in column.chunks:
        text = chunk if pa.types.is_string(chunk.type) else chunk.cast(pa.string())
        encoded = text.dictionary_encode()
        distinct = encoded.dictionary.to_pylist()
        digests = string_array([hmac_hex(secret, value) for value in distinct])
        chunks.append(digests.take(encoded.indices))
    return pa.chunked_array(chunks, type=pa.string())


def _change_message(previous: dict[str, Any], current: dict[str, Any]) -> str:
    changes = []
    if previous.get("secret_fingerprint") != current["secret_fingerprint"]:
        changes.append(
            "hash_secret differs from the one the tables were loaded with"
            if previous.get("secret_fingerprint") and current["secret_fingerprint"]
            else "hashing was turned on or off"
        )
    for key in ("hash_columns", "drop_columns"):
        if previous.get(key, []) != current[key]:
            changes.append(f"{key} was {previous.get(key, [])}, now {current[key]}")
    return (
        "refusing to load: "
        + "; ".join(changes)
        + ". The tables would mix values hashed or dropped differently. Load with the earlier "
        "settings, or run a full refresh (--full-refresh) to reload everything with the new ones"
    )
