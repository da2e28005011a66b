"""Dataset items as Arrow (``format=arrow``, an IPC stream) and Parquet (``format=parquet``), beyond
Apify's formats: a DataFrame comes out of these without parsing JSON on the client.

The table is built on each read from the stored JSON (no Arrow copy is kept beside the dataset: one
more file to keep in step with every push, for a read that already takes a fraction of JSON's time).
A column whose values are all numbers, all strings, or all booleans (none missing) is a typed Arrow
column; any other column (objects, arrays, mixed types, booleans with gaps, only nulls) is a string
column of each value's JSON text, marked ``jupyter-actors.encoding: json`` in its field metadata. A
missing field is an Arrow null; in a JSON-text column an explicit null is the text ``null``, so a reader
can tell the two apart as pandas does for records. pyarrow is an optional server dependency (the
``arrow`` extra); without it these formats are refused with a 400 that names the extra.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import InvalidInput
from .items import ItemsPage

if TYPE_CHECKING:
    import pyarrow

#: Field metadata of a column holding each value's JSON text.
JSON_ENCODING = {b"jupyter-actors.encoding": b"json"}
#: Rows per IPC record batch: small enough to stream, large enough that per-batch costs vanish.
BATCH_ROWS = 65_536
_MISSING = object()


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.json  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise InvalidInput("format=arrow and format=parquet need pyarrow on the server, which is not installed "
                           "there: pip install 'jupyter-actors[arrow]' (or use format=json or jsonl).",
                           type="arrow-not-installed") from None
    return pyarrow


def require_pyarrow() -> None:
    """Refuse the columnar formats up front (a 400) when the server has no pyarrow."""
    _pyarrow()


def items_table(page: ItemsPage) -> pyarrow.Table:
    """The page's items as a table, columns in first-seen key order (as ``DataFrame.from_records``)."""
    pa = _pyarrow()
    data = b"\n".join(page.segments())
    if not data:
        return pa.table({})
    try:
        table = _read_native(pa, data)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Mixed types in a column (or an item bigger than a parse block): typed per column in Python.
        return _table_of_rows(pa, [orjson.loads(part) for part in data.split(b"\n")])
    rework = [name for name, column in zip(table.column_names, table.columns, strict=True)
              if not _native(pa, column.type, column.null_count)]
    if rework:
        rows = [orjson.loads(part) for part in data.split(b"\n")]
        for name in rework:
            table = table.set_column(table.column_names.index(name), *_json_column(pa, name, rows))
    return table


def _read_native(pa: Any, data: bytes) -> pyarrow.Table:
    """pyarrow's own (multi-threaded) JSON reader. It reads ISO date strings as timestamps: those columns
    are read again as the strings they are, so the table holds exactly what was stored."""
    table = pa.json.read_json(pa.BufferReader(data))
    dated = [field.name for field in table.schema if pa.types.is_timestamp(field.type) or pa.types.is_date(field.type)]
    if dated:
        options = pa.json.ParseOptions(explicit_schema=pa.schema([(name, pa.string()) for name in dated]),
                                       unexpected_field_behavior="infer")
        order = table.column_names
        table = pa.json.read_json(pa.BufferReader(data), parse_options=options).select(order)
    return table


def _native(pa: Any, kind: Any, nulls: int) -> bool:
    """Types that come back to pandas as records would: numbers (a gap is NaN either way), strings, and
    booleans without gaps (a gap makes records' column hold None or NaN, which Arrow cannot tell apart)."""
    if pa.types.is_int64(kind) or pa.types.is_float64(kind) or pa.types.is_string(kind):
        return True
    return bool(pa.types.is_boolean(kind) and not nulls)


def _json_column(pa: Any, name: str, rows: list[dict[str, Any]]) -> tuple[Any, Any]:
    dumps = orjson.dumps
    texts = [dumps(row[name]).decode() if name in row else None for row in rows]
    return pa.field(name, pa.string(), metadata=JSON_ENCODING), pa.array(texts, pa.string())


def _table_of_rows(pa: Any, rows: list[dict[str, Any]]) -> pyarrow.Table:
    names = list(dict.fromkeys(key for row in rows for key in row))
    fields, columns = [], []
    for name in names:
        values = [row.get(name, _MISSING) for row in rows]
        kinds = {type(value) for value in values}
        column = None
        if kinds <= {int, float, type(None), object} and kinds & {int, float}:
            try:
                column = pa.array([None if value is _MISSING else value for value in values])
            except (pa.ArrowInvalid, OverflowError):
                column = None  # an integer past 64 bits: JSON text keeps it exact
        elif kinds <= {str, type(None), object} and str in kinds:
            column = pa.array([None if value is _MISSING else value for value in values], pa.string())
        elif kinds == {bool}:
            column = pa.array(values, pa.bool_())
        if column is not None and _native(pa, column.type, column.null_count):
            fields.append(pa.field(name, column.type))
            columns.append(column)
        else:
            field, column = _json_column(pa, name, rows)
            fields.append(field)
            columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def write_arrow(page: ItemsPage) -> tempfile.SpooledTemporaryFile[bytes]:
    """The page as an Arrow IPC stream in a temporary file (read it from the start)."""
    pa = _pyarrow()
    table = items_table(page)
    output = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115 (the caller closes it)
    with pa.ipc.new_stream(output, table.schema) as writer:
        writer.write_table(table, max_chunksize=BATCH_ROWS)
    output.seek(0)
    return output


def write_parquet(page: ItemsPage) -> tempfile.SpooledTemporaryFile[bytes]:
    """The page as one Parquet file (Arrow schema and field metadata included) in a temporary file."""
    pa = _pyarrow()
    table = items_table(page)
    output = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115 (the caller closes it)
    pa.parquet.write_table(table, output)
    output.seek(0)
    return output
