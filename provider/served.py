"""The ids one pass over a list has served, to count those served again, in bounded memory.

A set of ids costs about 100 bytes an id: 100 MiB for a pass over a million conversations. So
past ``exact_limit`` ids (262,144, some 25 MiB: most accounts never leave the set, which costs
40 ns an id against the arrays' 330) the set gives way to bit arrays, one bit per id chosen by
the id's hash and 32 bits per id, about 4 bytes: 4 MiB for a million. An id served again always
finds its bit set, so a repeat is never missed; a new id whose bit another id set counts as a
repeat too, at most about 3 % of them per array (1 - e^(-1/32)). An array that has taken its
share of ids is only read from then on, and one eight times its size takes the next ones: memory
stays about 4 bytes an id, and three arrays (about 9 % of new ids taken for repeats) cover 73
million ids. The repeat rule that uses these counts (see :mod:`octopush_provider.paging`) allows
repeats up to half the new rows, far above that.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

__all__ = ["ServedIds"]

EXACT_IDS = 262_144
BITS_PER_ID = 32
FIRST_ARRAY_BITS = 1 << 25  # 4 MiB, a million ids
GROWTH = 8  # few arrays: three take 73 million ids


class _Bits:
    """One bit array, filled up to ``room`` ids."""

    __slots__ = ("bits", "mask", "room")

    def __init__(self, size: int) -> None:
        self.bits = bytearray(size // 8)
        self.mask = size - 1
        self.room = size // BITS_PER_ID

    def has(self, key_hash: int) -> bool:
        index = key_hash & self.mask
        return bool(self.bits[index >> 3] & (1 << (index & 7)))


class ServedIds:
    """Adds the ids of each page and says how many of them were served before."""

    def __init__(self, *, exact_limit: int | None = None) -> None:
        self._exact: set[Hashable] | None = set()
        self._exact_limit = EXACT_IDS if exact_limit is None else exact_limit
        self._full: list[_Bits] = []
        self._current: _Bits | None = None

    def add(self, keys: Sequence[Hashable]) -> int:
        """Add ``keys``; return how many had been added before (an id twice in ``keys`` too)."""
        if self._exact is not None:
            before = len(self._exact)
            self._exact.update(keys)
            again = len(keys) - (len(self._exact) - before)
            if len(self._exact) > self._exact_limit:
                exact, self._exact = self._exact, None
                self._add_hashes(list(map(hash, exact)))
            return again
        return self._add_hashes(list(map(hash, keys)))

    def first_unseen(self, keys: Sequence[Hashable]) -> int | None:
        """The index of the first of ``keys`` not added before (None: all were, or seem so).

        Past the exact set a new id may seem seen (its bit set by another): the answer is then
        a later index, never an earlier one.
        """
        for index, key in enumerate(keys):
            if self._exact is not None:
                if key not in self._exact:
                    return index
                continue
            key_hash = hash(key)
            arrays = [*self._full, *([self._current] if self._current else [])]
            if not any(bits.has(key_hash) for bits in arrays):
                return index
        return None

    def _add_hashes(self, hashes: list[int]) -> int:
        again = 0
        full = self._full
        for key_hash in hashes:
            current = self._current
            if current is None or current.room == 0:
                current = self._grow()
            index = key_hash & current.mask
            byte, bit = index >> 3, 1 << (index & 7)
            if current.bits[byte] & bit or (full and any(old.has(key_hash) for old in full)):
                again += 1
            else:
                current.bits[byte] |= bit
                current.room -= 1
        return again

    def _grow(self) -> _Bits:
        if self._current is not None:
            self._full.append(self._current)
        size = FIRST_ARRAY_BITS if self._current is None else len(self._current.bits) * 8 * GROWTH
        self._current = _Bits(size)
        return self._current
