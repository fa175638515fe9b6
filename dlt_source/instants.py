"""Instants as microseconds since the epoch in UTC, what Arrow stores.

The ``last_message_at`` of a page's rows read so, however the rows were built: the ordering
check of parsed rows, and the naming of a row out of order (tables are checked column-wise in
:mod:`octopush_dlt.reading`). And datetimes to and from Arrow timestamps through their
microseconds, which keeps pyarrow from importing pandas (:mod:`octopush_dlt.arrow_values`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from octopush_dlt.arrow_values import int64_scalar
from octopush_dlt.tables import TIMESTAMP
from octopush_provider.conversations import CURSOR_FIELD, Conversation
from octopush_provider.page import Page

FIRST_FIELD = "first_message_at"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch."""
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """Microseconds since the epoch as a UTC datetime."""
    return _EPOCH + micros * _MICROSECOND


def arrow_instant(moment: datetime) -> pa.TimestampScalar:
    """An aware datetime as an Arrow UTC timestamp (see :mod:`octopush_dlt.arrow_values`)."""
    instant: pa.TimestampScalar = int64_scalar(to_micros(moment), TIMESTAMP)
    return instant


def instant_datetime(instant: pa.TimestampScalar) -> datetime:
    """An Arrow UTC timestamp as a UTC datetime (Arrow's ``as_py`` asks pandas first)."""
    return from_micros(instant.value)


def _micros_column(table: pa.Table, name: str) -> list[int | None]:
    values: list[int | None] = table.column(name).cast(pa.int64()).to_pylist()
    return values


def cursor_micros(page: Page) -> list[int]:
    """Each row's ``last_message_at`` of a page, from its table when it has one."""
    if page.table is not None:
        return table_cursor_micros(page.table)
    return rows_cursor_micros(page.rows)


def table_cursor_micros(table: pa.Table) -> list[int]:
    """Each row's ``last_message_at`` of a table (never null: the schema says so)."""
    return _micros_column(table, CURSOR_FIELD)  # type: ignore[return-value]


def rows_cursor_micros(rows: list[Conversation]) -> list[int]:
    """Each parsed row's ``last_message_at``."""
    return [to_micros(row[CURSOR_FIELD]) for row in rows]
