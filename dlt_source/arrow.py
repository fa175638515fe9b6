"""API records as Arrow tables with a fixed schema per table (see :mod:`octopush_dlt.tables`).

Handing dlt Arrow tables skips its per-row normalisation, and a fixed schema keeps the column
types the same whatever the first page happens to contain (an all-null ``agent_assigned_to``, a
``color`` sent as a string). The table's nested object (``recipient_details``,
``user_identifiers``) is flattened the way dlt would name it; fields the API adds later are kept
as extra columns.

A value of the wrong type never reaches Arrow's converters, whose errors name neither the row nor
the field: the parser has refused bad timestamps and integers already, and a text field holding a
number or an object keeps its JSON text, counted so that the run can say so once per field.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa
from dlt.common.data_types import TDataType
from dlt.common.libs.pyarrow import get_column_type_from_py_arrow
from dlt.common.schema.typing import TColumnSchema, TTableSchemaColumns

from octopush_dlt.tables import TIMESTAMP, TableSpec
from octopush_provider.conversations import INT64_MAX, INT64_MIN

logger = logging.getLogger(__name__)

_DLT_TYPES: dict[pa.DataType, TDataType] = {
    pa.string(): "text",
    pa.int64(): "bigint",
    TIMESTAMP: "timestamp",
}


def _hint(field: pa.Field) -> TColumnSchema:
    hint: TColumnSchema = {"data_type": _DLT_TYPES[field.type], "nullable": field.nullable}
    if field.type == TIMESTAMP:
        hint["timezone"] = True
    return hint


def column_hints(table: TableSpec) -> TTableSchemaColumns:
    """dlt's column hints, read off the schema so that the two never disagree: the types do not
    depend on the first page seen, even where dlt creates the table before any Arrow arrives."""
    return {field.name: _hint(field) for field in table.schema}


def _json_texts(values: list[Any]) -> list[str | None]:
    return [v if v is None or type(v) is str else orjson.dumps(v).decode() for v in values]


def _extra_array(values: list[Any]) -> pa.Array:
    """Let Arrow infer a new field's type; if its values disagree, keep them as JSON text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed types, beyond 64 bits
        return pa.array([None if v is None else orjson.dumps(v).decode() for v in values])


# What a value must be to stay in an extra column of these dlt types when another batch or run
# sends other types; values of other types (and columns of other types) go beside, as text.
_SCALARS: dict[str, tuple[pa.DataType, Callable[[Any], bool]]] = {
    "bigint": (pa.int64(), lambda v: type(v) is int and INT64_MIN <= v <= INT64_MAX),
    "double": (pa.float64(), lambda v: type(v) is float or type(v) is int),
    "bool": (pa.bool_(), lambda v: type(v) is bool),
}


class ExtraTypes:
    """The type each extra column took first: in the destination, or earlier in this run.

    A later batch with values of another type would fail inside dlt's writer or the warehouse.
    Its values are cast to the first type when that is exact; otherwise those that fit stay,
    and the others are kept as JSON text: in the column itself when it holds text, else beside
    it in ``<name>__v_text`` (dlt's name for a variant column), with one warning per run.
    """

    def __init__(self, columns: TTableSchemaColumns | None = None) -> None:
        self._kinds: dict[str, str] = {
            n: str(c["data_type"]) for n, c in (columns or {}).items() if c.get("data_type")
        }
        self._arrow: dict[str, pa.DataType] = {}
        self._variants: set[str] = set()

    def fit(self, name: str, values: list[Any]) -> list[tuple[str, pa.Array]]:
        """The columns (name and array) that hold an extra field's values of one batch."""
        array = _extra_array(values)
        kind = get_column_type_from_py_arrow(array.type).get("data_type")
        if kind is None:  # only nulls: no type to keep
            return [(name, array)]
        known = self._kinds.setdefault(name, kind)
        if known == "text":
            return [(name, array if kind == "text" else pa.array(_json_texts(values), pa.string()))]
        if kind == known:
            first = self._arrow.setdefault(name, array.type)
            if array.type == first:
                return [(name, array)]
            try:
                return [(name, array.cast(first))]  # a safe cast: refuses to truncate
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        if known not in _SCALARS:
            return [(self._variant(name), pa.array(_json_texts(values), pa.string()))]
        arrow_type, fits = _SCALARS[known]
        kept = [v if fits(v) else None for v in values]
        others = [None if fits(v) else v for v in values]
        return [
            (name, pa.array(kept, arrow_type)),
            (self._variant(name), pa.array(_json_texts(others), pa.string())),
        ]

    def _variant(self, name: str) -> str:
        variant = f"{name}__v_text"
        if variant not in self._variants:
            self._variants.add(variant)
            logger.warning(
                "Octopush sent values of field %r that do not fit its type %s: kept as JSON text "
                "in %r",
                name,
                self._kinds[name],
                variant,
            )
        return variant


def _column(field: pa.Field, values: list[Any], coerced: Counter[str]) -> pa.Array:
    """A known column; a text field's non-text values become their JSON text, counted."""
    try:
        return pa.array(values, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if field.type != pa.string():
            raise  # the parser guarantees the other types
    coerced[field.name] += sum(v is not None and type(v) is not str for v in values)
    return pa.array(_json_texts(values), type=field.type)


def to_table(
    rows: list[dict[str, Any]],
    table: TableSpec,
    *,
    coerced: Counter[str] | None = None,
    extra_types: ExtraTypes | None = None,
) -> pa.Table:
    """Build one table from parsed records (timestamps already UTC datetimes).

    ``coerced`` counts, per field, the non-text values kept as JSON text; ``extra_types`` keeps
    the types of extra columns across the batches of a run. Columns are gathered with one
    comprehension each: this runs for every row of every load.
    """
    if coerced is None:
        coerced = Counter()
    if extra_types is None:
        extra_types = ExtraTypes()
    schema, nested, prefix = table.schema, table.nested, table.nested_prefix
    raw_parts = [row.get(nested) for row in rows]
    parts = [value if isinstance(value, dict) else {} for value in raw_parts]
    columns: dict[str, list[Any]] = {}
    for name in schema.names:
        if name.startswith(prefix):
            part = name[len(prefix) :]
            columns[name] = [values.get(part) for values in parts]
        else:
            columns[name] = [row.get(name) for row in rows]
    arrays = [_column(field, columns[field.name], coerced) for field in schema]
    result = pa.Table.from_arrays(arrays, schema=schema)
    known_parts = {name[len(prefix) :] for name in schema.names if name.startswith(prefix)}
    extras = {
        **{
            key: [row.get(key) for row in rows]
            for key in set().union(*rows) - set(schema.names) - {nested}
        },
        **{
            prefix + part: [values.get(part) for values in parts]
            for part in set().union(*parts) - known_parts
        },
    }
    # A nested value that is not an object is kept whole, as JSON text, in a column of its own.
    odd = [None if isinstance(value, dict) else value for value in raw_parts]
    if any(value is not None for value in odd):
        coerced[nested] += sum(value is not None for value in odd)
        extras[nested] = _json_texts(odd)
    for name in sorted(extras):
        for column, array in extra_types.fit(name, extras[name]):
            result = result.append_column(column, array)
    return result
