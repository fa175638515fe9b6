"""Arrow values built from buffers are the values pyarrow's own conversion would make."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from octopush_dlt.arrow_values import (
    FALSE,
    ONE_TRUE,
    constant_int8,
    int64_array,
    int64_scalar,
    string_array,
)
from octopush_dlt.instants import arrow_instant, instant_datetime
from octopush_dlt.tables import TIMESTAMP

EXTREMES = [0, 1, -1, 2**63 - 1, -(2**63), 1_795_728_047_945_663]


def test_int64_array_holds_every_value_in_order():
    assert int64_array(iter(EXTREMES)).equals(pa.array(EXTREMES, pa.int64()))
    assert int64_array([]).equals(pa.array([], pa.int64()))


def test_int64_array_in_a_pool_of_its_own():
    pool = pa.system_memory_pool()
    before = pool.bytes_allocated()

    kept = int64_array(range(1000), memory_pool=pool)

    assert kept.to_pylist() == list(range(1000))
    assert pool.bytes_allocated() - before >= 8 * 1000


@pytest.mark.parametrize("value", EXTREMES)
def test_int64_scalar_of_an_integer_and_of_a_timestamp(value):
    assert int64_scalar(value, pa.int64()).equals(pa.scalar(value, pa.int64()))
    assert int64_scalar(value, TIMESTAMP).equals(pa.scalar(value, pa.int64()).cast(TIMESTAMP))


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 5000])
def test_constant_int8(count):
    assert constant_int8(2, count).equals(pa.array([2] * count, pa.int8()))


def test_booleans():
    assert ONE_TRUE.equals(pa.array([True]))
    assert FALSE.equals(pa.scalar(False))


TEXTS = [[], [""], ["a", "", "bc"], ["é", "日本", "\U0001f600", "x" * 70_000]]


@pytest.mark.parametrize("texts", TEXTS)
def test_string_array(texts):
    assert string_array(texts).equals(pa.array(texts, pa.string()))


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 26, 21, 15, 17, 123456, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime.fromisoformat("2026-03-29T02:30:00+02:00"),
    ],
)
def test_instants_round_trip(moment):
    instant = arrow_instant(moment)

    assert instant.equals(pa.scalar(moment, TIMESTAMP))
    assert instant_datetime(instant) == moment
    assert instant_datetime(instant).utcoffset().total_seconds() == 0
