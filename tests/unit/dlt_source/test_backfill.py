"""The slice selector of a first load (backfill.py): bounded in rows and in bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from octopush_dlt.backfill import SliceSelector
from octopush_provider.exceptions import OctopushConfigError
from tests.helpers import ids

MiB = 1024 * 1024
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(n: int, *, mib: float = 0.001, second: int | None = None) -> dict:
    """Conversation ``n`` whose last message is ``second`` (default ``n``) seconds after T0."""
    moment = T0 + timedelta(seconds=n if second is None else second)
    return {"conversation_id": f"c{n}", "last_message_at": moment, "weight": int(mib * MiB)}


def select(rows: list[dict], *, size: int = 5_000, max_bytes: int = 10 * MiB, pages: int = 1):
    selector = SliceSelector(
        after=None, size=size, max_bytes=max_bytes, weigh=lambda row: row["weight"]
    )
    newest_first = sorted(rows, key=lambda row: row["last_message_at"], reverse=True)
    for start in range(pages):
        selector.offer(newest_first[start::pages])
    return selector.take()


def test_a_slice_of_large_rows_ends_at_its_bytes_before_its_rows():
    rows = [row(n, mib=3) for n in range(1, 11)]  # 30 MiB, 10 rows, oldest first

    taken, last = select(rows, max_bytes=10 * MiB, pages=3)

    assert (ids(taken), last) == (["c1", "c2", "c3"], False)  # 9 MiB; a fourth makes 12


def test_the_oldest_row_is_taken_whatever_its_size_so_the_backfill_ends():
    taken, last = select([row(1, mib=50), row(2, mib=50)], max_bytes=10 * MiB)

    assert (ids(taken), last) == (["c1"], False)


def test_rows_within_both_bounds_are_the_last_slice():
    taken, last = select([row(n, mib=1) for n in range(1, 6)], max_bytes=5 * MiB)

    assert (ids(taken), last) == (["c1", "c2", "c3", "c4", "c5"], True)


def test_rows_sharing_the_edge_instant_go_together_to_the_next_slice():
    rows = [row(1, mib=4), row(2, mib=4, second=2), row(3, mib=4, second=2)]

    taken, last = select(rows, max_bytes=10 * MiB)

    assert (ids(taken), last) == (["c1"], False)


def test_rows_too_heavy_to_share_a_slice_name_the_byte_bound():
    rows = [row(n, mib=6, second=1) for n in range(1, 4)]

    with pytest.raises(
        OctopushConfigError, match="weigh more than a slice's 10 MiB: raise SLICE_BYTES"
    ):
        select(rows, max_bytes=10 * MiB)


def test_rows_too_many_to_share_a_slice_name_the_row_bound():
    rows = [row(n, second=1) for n in range(1, 4)]

    with pytest.raises(OctopushConfigError, match="raise slice_conversations"):
        select(rows, size=2)


def test_a_slice_of_small_rows_ends_at_its_rows():
    taken, last = select([row(n) for n in range(1, 11)], size=4, pages=2)

    assert (ids(taken), last) == (["c1", "c2", "c3", "c4"], False)
