"""Writing a job's rows as Parquet, table by table, with a fixed type per SQL column type.

lensbatch/store/export.py says which tables and rows belong to a job.

Types: integers are int64, floats float64, booleans bool, strings string, timestamps
timestamp[us, UTC] (SQLite hands back naive datetimes, which lensbatch always writes
in UTC), and JSON columns are JSON text (json.dumps with sorted keys).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import JSON, Boolean, Column, DateTime, Engine, Float, Integer, Table

from lensbatch.errors import UserError
from lensbatch.metrics import DOC_METRICS
from lensbatch.store.clock import as_utc
from lensbatch.store.export import job_tables


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
    return pa.string()  # String, Text, and JSON as text


def _cell(column: Column[Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, JSON):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, datetime):
        return as_utc(value)
    return value


def arrow_table(table: Table, rows: Iterable[Sequence[Any]]) -> pa.Table:
    """Rows (in table.columns order) as a pyarrow table with the fixed column types."""
    columns = list(table.columns)
    data: list[list[Any]] = [[] for _ in columns]
    for row in rows:
        for i, (column, value) in enumerate(zip(columns, row, strict=True)):
            data[i].append(_cell(column, value))
    arrow_schema = pa.schema([pa.field(c.name, arrow_type(c), nullable=c.nullable or False)
                              for c in columns])
    return pa.Table.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(data, arrow_schema,
                                                                      strict=True)],
        schema=arrow_schema,
    )


def export_job(engine: Engine, job_id: str, directory: Path) -> dict[str, int]:
    """Write DIR/<table>.parquet for every table of the job; return rows per table."""
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} exists and is not a directory")
    written: dict[str, int] = {}
    for table, rows in job_tables(engine, job_id):  # JobNotFound before any file
        directory.mkdir(parents=True, exist_ok=True)
        arrow = arrow_table(table, rows)
        pq.write_table(arrow, directory / f"{table.name}.parquet")
        written[table.name] = arrow.num_rows
    return written


def write_parquet(rows: Iterable[dict[str, Any]], columns: Sequence[str], path: str) -> int:
    """Rows of dicts (as `results` and `heads` produce) to one Parquet file. A registry
    metric's column gets its type (int64 for counts, float64 otherwise), doc_id is a
    string; any other column's type is inferred. Returns the count."""
    listed = list(rows)
    kinds = {m.name: pa.int64() if m.kind == "count" else pa.float64() for m in DOC_METRICS}
    kinds["doc_id"] = pa.string()
    fields = []
    for name in columns:
        if name in kinds:
            fields.append(pa.field(name, kinds[name]))
        else:
            values = pa.array([row[name] for row in listed])
            fields.append(pa.field(name, pa.string() if values.type == pa.null()
                                   else values.type))
    arrow_schema = pa.schema(fields)
    arrays = [pa.array([row[f.name] for row in listed], type=f.type) for f in arrow_schema]
    pq.write_table(pa.Table.from_arrays(arrays, schema=arrow_schema), path)
    return len(listed)
