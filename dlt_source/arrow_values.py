"""Arrow values made from Python ones without pyarrow's pandas check.

The first time pyarrow converts a Python value (``pa.array``, ``pa.scalar``, a number passed to
a compute function), it imports pandas only to ask whether the value is a pandas object: about
0.2 s and 300 modules, in every process that loads. The few values a load of conversations
makes from Python ones are built here from buffers instead, so that a run of the CLI or of the
operator never pays it (``tests/test_arrow_values.py``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

import pyarrow as pa

__all__ = ["FALSE", "TRUES", "constant_int8", "int64_array", "int64_scalar"]


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


def _booleans(value: bool, count: int) -> pa.Array:
    packed = (b"\xff" if value else b"\x00") * -(-count // 8)
    return pa.Array.from_buffers(pa.bool_(), count, [None, pa.py_buffer(packed)])


TRUES = _booleans(True, 1)
FALSE = _booleans(False, 1)[0]
