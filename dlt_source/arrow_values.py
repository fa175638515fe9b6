"""Arrow values made from Python ones without pyarrow's pandas check.

The first time pyarrow converts a Python value (``pa.array``, ``pa.scalar``, a number passed to
a compute function, a timestamp's ``as_py``), it imports pandas, where pandas is installed, only
to ask whether the value is a pandas object: about 0.2 s and 300 modules, in every process that
loads. The values a load of conversations makes from Python ones on its fast path (the tally's
instants and hashes, the read's start, the digests of hashed columns) are built here from
buffers instead, so that such a load never pays it (``tests/e2e/test_cli.py``). Pages parsed row by
row, deletion checks and messages still convert Python values, and import it.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from itertools import accumulate

import pyarrow as pa

__all__ = ["FALSE", "ONE_TRUE", "constant_int8", "int64_array", "int64_scalar", "string_array"]


def int64_array(values: Iterable[int], memory_pool: pa.MemoryPool | None = None) -> pa.Array:
    """The integers as an Arrow array (in ``memory_pool`` when given)."""
    native = array("q", values)
    built = pa.Array.from_buffers(pa.int64(), len(native), [None, pa.py_buffer(native)])
    return pa.concat_arrays([built], memory_pool=memory_pool) if memory_pool else built


def int64_scalar(value: int, type_: pa.DataType) -> pa.Scalar:
    """One integer as an Arrow scalar of ``type_``, a 64-bit type (a timestamp, say)."""
    return pa.Array.from_buffers(type_, 1, [None, pa.py_buffer(array("q", [value]))])[0]


def constant_int8(value: int, count: int) -> pa.Array:
    """``count`` times the same small integer."""
    return pa.Array.from_buffers(pa.int8(), count, [None, pa.py_buffer(bytes([value]) * count)])


def string_array(values: list[str]) -> pa.Array:
    """Texts (none of them null) as an Arrow string array; past 2 GiB, OverflowError."""
    encoded = [value.encode() for value in values]
    offsets = array("i", accumulate(map(len, encoded), initial=0))
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), len(encoded), buffers)


def _one_boolean(value: bool) -> pa.Array:
    return pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(b"\x01" if value else b"\x00")])


ONE_TRUE = _one_boolean(True)  # an array of one true value
FALSE = _one_boolean(False)[0]
