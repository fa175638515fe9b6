"""Batches of pages (batches.py): bounded in rows and in bytes."""

from __future__ import annotations

from octopush_dlt.batches import batches
from octopush_dlt.settings import BATCH_BYTES

MiB = 1024 * 1024


def test_a_batch_of_huge_rows_closes_at_its_bytes_before_its_rows():
    # Pages of 100 rows of 600 KB each (~60 MB): far fewer rows than a batch, far more bytes.
    pages = [f"page {n}" for n in range(1, 7)]

    joined = list(batches(pages, rows=lambda page: 100, size=lambda page: 60_000_000))

    # Each page alone passes BATCH_BYTES: each is a batch of its own, none waits for the next.
    assert BATCH_BYTES < 60_000_000
    assert joined == [[page] for page in pages]


def test_small_pages_are_joined_until_their_bytes_reach_the_bound():
    pages = list(range(10))

    joined = list(batches(pages, rows=lambda page: 10, size=lambda page: 10 * MiB))

    assert [len(batch) for batch in joined] == [4, 4, 2]  # 40 MiB >= 32 MiB closes a batch
