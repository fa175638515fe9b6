"""API records as Arrow tables with a fixed schema per table (see :mod:`octopush_dlt.tables`).

Handing dlt Arrow tables skips its per-row normalisation, and a fixed schema keeps the column
types the same whatever the first page happens to contain (an all-null ``agent_assigned_to``, a
``color`` sent as a string). The table's nested object (``recipient_details``,
``user_identifiers``) is flattened the way dlt would name it; fields the API adds later are kept
as extra columns.

A value of the wrong type never reaches Arrow's converters, whose errors name neither the row nor
the field: the parser has refused bad timestamps and integers already, and a text field holding a
number or an object keeps its JSON text, counted so that the run can say so once per field.

Most pages of conversations hold nothing but the common case, and :func:`fast_table` builds
their table straight from the body with Arrow's JSON reader, UTC by Arrow's cast; any value it
does not take sends the page down the validated row-wise path, which accepts more and words
every error. Both give the same table for every page the fast path takes
(``tests/e2e/test_fast_table.py``).
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from dlt.common.data_types import TDataType
from dlt.common.libs.pyarrow import get_column_type_from_py_arrow
from dlt.common.schema.typing import TColumnSchema, TTableSchemaColumns

from octopush_dlt.tables import CONVERSATIONS, TIMESTAMP, TableSpec
from octopush_provider.conversations import CURSOR_FIELD, ID_FIELD, INT64_MAX, INT64_MIN

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


# The one shape of date-time the fast path takes: seconds and an offset (or Z), within ranges
# where Arrow's cast and the row-wise parser agree; a bad day of the month fails the cast.
_STRICT_TIMESTAMP = (
    r"^(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def _raw_type(field: pa.Field) -> pa.DataType:
    return pa.int64() if field.type == pa.int64() else pa.string()


@dataclass(frozen=True, kw_only=True)
class _Shape:
    """What the fast path needs to know of a table, read off its spec."""

    table: TableSpec
    raw: pa.StructType  # the API's objects as Arrow's JSON reader reads them, dates as text
    timestamps: list[str]
    required: list[str]

    @classmethod
    def of(cls, table: TableSpec) -> _Shape:
        schema, prefix = table.schema, table.nested_prefix
        nested = [field for field in schema if field.name.startswith(prefix)]
        flat = [field for field in schema if not field.name.startswith(prefix)]
        parts = [pa.field(f.name[len(prefix) :], _raw_type(f)) for f in nested]
        return cls(
            table=table,
            raw=pa.struct(
                [pa.field(f.name, _raw_type(f)) for f in flat]
                + [pa.field(table.nested, pa.struct(parts))]
            ),
            timestamps=[f.name for f in schema if f.type == TIMESTAMP],
            required=[f.name for f in schema if not f.nullable],
        )


_CONVERSATIONS = _Shape.of(CONVERSATIONS)
_BODY_SCHEMA = pa.schema([pa.field("items", pa.list_(_CONVERSATIONS.raw))])
_PARSE = pajson.ParseOptions(explicit_schema=_BODY_SCHEMA, unexpected_field_behavior="error")


def _read_body(body: bytes) -> pa.StructArray | None:
    """The body's objects as one Arrow array, or None unless it is an array of objects with
    the known fields only, each of its JSON type: Arrow's JSON reader refuses every other value,
    including duplicate keys, floats and numbers beyond 64 bits in integer fields."""
    wrapped = b'{"items":' + body + b"}"
    options = pajson.ReadOptions(use_threads=False, block_size=len(wrapped) + 1)
    try:
        pages = pajson.read_json(io.BytesIO(wrapped), read_options=options, parse_options=_PARSE)
        lists = pages.column(0).combine_chunks()
        if len(lists) != 1 or lists.null_count:
            return None  # a body of `null`
        objects: pa.StructArray = lists.flatten()
        objects.validate(full=True)  # UTF-8: Arrow's reader does not check it
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return objects if len(objects) else None  # a null object has null required fields


def fast_table(body: bytes) -> tuple[pa.Table, list[dict[str, Any]]] | None:
    """The table of a page of conversations straight from the body as the API sent it, with
    each row's id and ``last_message_at`` as sent; None unless every value is the common case.

    No Python object is made per value of the table (only an id and a cursor per row, for the
    paging, once the page is taken): at 1,000 conversations a page this takes a third of the
    CPU of parsing the JSON and converting the objects (about 2 against 6 ms a page).
    """
    shape = _CONVERSATIONS
    raw = _read_body(body)
    if raw is None:
        return None
    columns = dict(zip(shape.raw.names, raw.flatten(), strict=True))
    nested = columns.pop(shape.table.nested)
    for part, values in zip(nested.type.names, nested.flatten(), strict=True):
        columns[shape.table.nested_prefix + part] = values
    key, cursor = ID_FIELD, CURSOR_FIELD  # the fields the paging compares pages by
    sent_cursors = columns[cursor]  # as sent, before the cast below
    for name in shape.timestamps:
        text = columns[name]
        if not pc.all(pc.match_substring_regex(text, _STRICT_TIMESTAMP)).as_py():
            return None
        try:
            columns[name] = text.cast(TIMESTAMP)
        except pa.ArrowInvalid:  # a day the month does not have
            return None
    if any(columns[name].null_count for name in shape.required):
        return None
    if pc.min(pc.utf8_length(columns[key])).as_py() == 0:
        return None  # an empty id: the row-wise path names it
    keys = [
        {key: conversation_id, cursor: moment}
        for conversation_id, moment in zip(
            columns[key].to_pylist(), sent_cursors.to_pylist(), strict=True
        )
    ]
    schema = shape.table.schema
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema), keys
