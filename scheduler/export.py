"""Writing a job's rows as Parquet, table by table, with a fixed type per SQL column type.

lensbatch/store/export.py says which tables and rows belong to a job. Rows come and go
in batches (pyarrow's ParquetWriter, one row group per batch), so memory does not grow
with the job.

Types: integers are int64, floats float64, booleans bool, strings string, timestamps
timestamp[us, UTC] (SQLite hands back naive datetimes, which lensbatch always writes
in UTC), and JSON columns are JSON text (json.dumps with sorted keys).
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import JSON, Boolean, Column, DateTime, Engine, Float, Integer, LargeBinary, Table

from lensbatch.errors import UserError
from lensbatch.metrics import DOC_METRICS
from lensbatch.store.clock import as_utc
from lensbatch.store.export import job_tables

BATCH_ROWS = 50_000


class ExportError(UserError):
    """The export directory cannot be used."""


def arrow_type(column: Column[Any]) -> pa.DataType:
    kind = column.type
    if isinstance(kind, Boolean):
        return pa.bool_()
    if isinstance(kind, Integer):  # BigInteger too
        return pa.int64()
    if isinstance(kind, Float):
        return pa.float64()
    if isinstance(kind, DateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(kind, LargeBinary):
        return pa.binary()
    return pa.string()  # String, Text, and JSON as text


def _cell(column: Column[Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, JSON):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, datetime):
        return as_utc(value)
    return value


def arrow_schema(table: Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c), nullable=c.nullable or False)
                      for c in table.columns])


def arrow_table(table: Table, rows: Iterable[Sequence[Any]]) -> pa.Table:
    """Rows (in table.columns order) as a pyarrow table with the fixed column types."""
    columns = list(table.columns)
    data: list[list[Any]] = [[] for _ in columns]
    for row in rows:
        for i, (column, value) in enumerate(zip(columns, row, strict=True)):
            data[i].append(_cell(column, value))
    schema = arrow_schema(table)
    return pa.Table.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(data, schema, strict=True)],
        schema=schema,
    )


def write_batches(batches: Iterable[pa.Table], schema: pa.Schema, path: Path | str) -> int:
    """Tables of `schema` to one Parquet file, a row group each; return the rows."""
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in batches:
            writer.write_table(batch)
            count += batch.num_rows
    return count


def export_job(engine: Engine, job_id: str, directory: Path) -> dict[str, int]:
    """Write DIR/<table>.parquet for every table of the job; return rows per table."""
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} exists and is not a directory")
    written: dict[str, int] = {}
    for table, batches in job_tables(engine, job_id):  # JobNotFound before any file
        directory.mkdir(parents=True, exist_ok=True)
        tables = (arrow_table(table, batch) for batch in batches)
        written[table.name] = write_batches(tables, arrow_schema(table),
                                            directory / f"{table.name}.parquet")
    return written


# Arrow types of a metadata field's column, by its kind (lensbatch/docmeta.py).
KIND_TYPES = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(),
              "string": pa.string(), "json": pa.string()}
# `results --activations`: its columns' types, whatever the first rows hold.
ACTIVATION_TYPES = {"doc_id": pa.string(), "hook": pa.string(), "layer": pa.int64(),
                    "head": pa.int64(), "stat": pa.string(), "value": pa.float64()}
Types = Mapping[str, pa.DataType]


def _field(name: str, values: Sequence[Any], types: Types | None = None) -> pa.Field:
    """A column named in `types` gets that type, a registry metric's column its own
    (int64 for counts, float64 otherwise), doc_id is a string; any other column's type
    is inferred from `values` (all null: string)."""
    if types and name in types:
        return pa.field(name, types[name])
    if name == "doc_id":
        return pa.field(name, pa.string())
    for metric in DOC_METRICS:
        if metric.name == name:
            return pa.field(name, pa.int64() if metric.kind == "count" else pa.float64())
    inferred = pa.array(values).type
    return pa.field(name, pa.string() if inferred == pa.null() else inferred)


def tuple_batches(rows: Iterable[dict[str, Any]], columns: Sequence[str],
                  size: int = BATCH_ROWS) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of dicts as batches of tuples in `columns` order."""
    iterator = iter(rows)
    while batch := [tuple(row[c] for c in columns) for row in itertools.islice(iterator, size)]:
        yield batch


def write_parquet(rows: Iterable[dict[str, Any]], columns: Sequence[str], path: str,
                  types: Types | None = None) -> int:
    """Rows of dicts (as `heads` produces) to one Parquet file; returns the count."""
    return write_tuple_batches(tuple_batches(rows, columns), columns, path, types)


def write_tuple_batches(batches: Iterable[Sequence[tuple[Any, ...]]], columns: Sequence[str],
                        path: str, types: Types | None = None) -> int:
    """Batches of tuples in `columns` order (as `results` streams them) to one Parquet
    file, the column types given by `types` or fixed by the first batch (see _field);
    returns the count."""
    iterator = iter(batches)
    first = next(iterator, [])
    by_column = list(zip(*first, strict=True)) if first else [() for _ in columns]
    schema = pa.schema([_field(name, values, types)
                        for name, values in zip(columns, by_column, strict=True)])

    def tables() -> Iterator[pa.Table]:
        for batch in itertools.chain([first], iterator):
            if batch:
                arrays = [pa.array(values, type=field.type)
                          for values, field in zip(zip(*batch, strict=True), schema,
                                                   strict=True)]
                yield pa.Table.from_arrays(arrays, schema=schema)

    return write_batches(tables(), schema, path)


class _ChunkStream(io.RawIOBase):
    """A readable file over an iterator of byte chunks (pyarrow's CSV reader reads it)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def write_csv_parquet(chunks: Iterator[bytes], columns: Sequence[str], path: str,
                      types: Types | None = None) -> int:
    """CSV as PostgreSQL's COPY writes it (no header; NULL an unquoted empty field, an
    empty string quoted) to one Parquet file, typed as write_tuple_batches types the
    columns; pyarrow parses it in blocks, so memory stays flat."""
    schema = pa.schema([_field(name, (), types) for name in columns])
    reader = pacsv.open_csv(
        io.BufferedReader(_ChunkStream(chunks), buffer_size=1 << 22),
        read_options=pacsv.ReadOptions(column_names=list(columns), block_size=1 << 22),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=schema, null_values=[""], strings_can_be_null=True,
            quoted_strings_can_be_null=False))
    return write_batches((pa.Table.from_batches([batch], schema=schema) for batch in reader),
                         schema, path)


def write_results_parquet(engine: Engine, job_id: str, path: str) -> int:
    """`lensbatch results JOB --format parquet`: PostgreSQL's COPY as CSV into pyarrow
    where the database has it, else streamed rows; the same file either way."""
    from lensbatch.store.queries import result_batches, result_csv, result_layout

    layout = result_layout(engine, job_id)
    types = {name: KIND_TYPES[kind] for name, kind in layout.kinds.items()}
    chunks = result_csv(engine, job_id)
    if chunks is not None:
        return write_csv_parquet(chunks, layout.columns, path, types)
    return write_tuple_batches(result_batches(engine, job_id), layout.columns, path, types)
