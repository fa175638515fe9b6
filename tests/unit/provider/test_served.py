"""The ids a pass served: repeats are never missed, new ids rarely taken for repeats."""

from __future__ import annotations

import pytest

from octopush_provider import served
from octopush_provider.served import ServedIds


def _ids(start: int, stop: int) -> list[str]:
    return [f"cid_{number:08d}" for number in range(start, stop)]


@pytest.mark.parametrize("exact_limit", [1_000_000, 0])
def test_every_id_served_again_is_counted(exact_limit):
    seen = ServedIds(exact_limit=exact_limit)
    pages = [_ids(at, at + 100) for at in range(0, 5_000, 100)]

    first = [seen.add(page) for page in pages]
    again = [seen.add(page) for page in pages]

    assert again == [100] * len(pages)
    assert sum(first) <= (0 if exact_limit else 0.05 * 5_000)
    again = seen.add(["a", "b", "a"])
    assert again == 1 if exact_limit else 1 <= again <= 2  # a repeat is never missed


def test_a_long_pass_keeps_about_four_bytes_an_id_and_few_false_repeats(monkeypatch):
    monkeypatch.setattr(served, "FIRST_ARRAY_BITS", 1 << 14)  # 512 ids, then 4,096, 32,768...
    seen = ServedIds(exact_limit=1_000)

    false_repeats = sum(seen.add(_ids(at, at + 500)) for at in range(0, 50_000, 500))

    arrays = [*seen._full, seen._current]
    assert len(arrays) == 4
    assert false_repeats < 0.035 * len(arrays) * 50_000  # about 3 % at most per array
    # Tighter, from the same rule: an id that goes to the k-th array is taken for a repeat by
    # each full array before it and by its own, about 1 - e^(-1/32) = 3.1 % each, at most.
    filled = [512, 4_096, 32_768, 50_000 - 1_000 - 512 - 4_096 - 32_768]
    assert false_repeats < sum(ids * k * 0.031 for k, ids in enumerate(filled, start=1))
    assert seen.add(_ids(0, 1_000)) == 1_000  # the first arrays are still read
    assert seen.add(_ids(49_000, 50_000)) == 1_000
    assert sum(len(bits.bits) for bits in arrays) == (512 + 4_096 + 32_768 + 262_144) * 4
