"""API records as Arrow tables with a fixed schema per table.

Handing dlt Arrow tables skips its per-row normalisation, and a fixed schema keeps the column
types the same whatever the first page happens to contain (an all-null ``agent_assigned_to``, a
``color`` sent as a string). The table's nested object is flattened the way dlt would name it;
fields the API adds later are kept as extra columns.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
from dlt.common.data_types import TDataType
from dlt.common.schema.typing import TColumnSchema, TTableSchemaColumns

from octopush_dlt.tables import TIMESTAMP, TableSpec

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


def _extra_array(values: list[Any]) -> pa.Array:
    """Let Arrow infer a new field's type; if its values disagree, keep them as JSON text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else orjson.dumps(v).decode() for v in values])


def to_table(rows: list[dict[str, Any]], table: TableSpec) -> pa.Table:
    """Build one Arrow table from parsed records (timestamps already UTC datetimes).

    Columns are gathered with one comprehension each: this runs for every row of every load.
    """
    schema, prefix = table.schema, table.nested_prefix
    nested = [value if isinstance(value := row.get(table.nested), dict) else {} for row in rows]
    columns: dict[str, list[Any]] = {}
    for name in schema.names:
        if name.startswith(prefix):
            part = name[len(prefix) :]
            columns[name] = [parts.get(part) for parts in nested]
        else:
            columns[name] = [row.get(name) for row in rows]
    arrays = [pa.array(columns[field.name], type=field.type) for field in schema]
    result = pa.Table.from_arrays(arrays, schema=schema)
    known_parts = {name[len(prefix) :] for name in schema.names if name.startswith(prefix)}
    extras = {
        **{
            key: [row.get(key) for row in rows]
            for key in set().union(*rows) - set(schema.names) - {table.nested}
        },
        **{
            prefix + part: [parts.get(part) for parts in nested]
            for part in set().union(*nested) - known_parts
        },
    }
    for name in sorted(extras):
        result = result.append_column(name, _extra_array(extras[name]))
    return result
