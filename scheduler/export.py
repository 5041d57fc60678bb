"""Writing a job's rows as Parquet, table by table, with a fixed type per SQL column type.

The export walks lensbatch.schema.metadata, so a table added by a later migration is
exported as soon as schema.py describes it: every table with a job_id column (that
job's rows), plus the jobs row, the job's documents and its model's row.

Types: integers are int64, floats float64, booleans bool, strings string, timestamps
timestamp[us, UTC] (SQLite hands back naive datetimes, which lensbatch always writes
in UTC), and JSON columns are JSON text (json.dumps with sorted keys).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    Select,
    Table,
    inspect,
    select,
)

from lensbatch import schema
from lensbatch.errors import JobNotFound, UserError


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
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
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


def job_queries(job_id: str) -> dict[str, Select[Any]]:
    """One query per table to export, keyed by table name, each in primary-key order."""
    jd = schema.job_documents
    queries: dict[str, Select[Any]] = {
        "jobs": select(schema.jobs).where(schema.jobs.c.id == job_id),
        "documents": select(schema.documents).where(schema.documents.c.id.in_(
            select(jd.c.document_id).where(jd.c.job_id == job_id))),
        "models": select(schema.models).where(schema.models.c.name.in_(
            select(schema.jobs.c.model).where(schema.jobs.c.id == job_id))),
    }
    for table in schema.metadata.sorted_tables:
        if "job_id" in table.c and table.name not in queries:
            queries[table.name] = select(table).where(table.c.job_id == job_id)
    for name, query in queries.items():
        table = schema.metadata.tables[name]
        queries[name] = query.order_by(*table.primary_key.columns)
    return queries


def export_job(engine: Engine, job_id: str, directory: Path) -> dict[str, int]:
    """Write DIR/<table>.parquet for every table of the job; return rows per table."""
    with engine.connect() as connection:
        if connection.scalar(select(schema.jobs.c.id).where(schema.jobs.c.id == job_id)) is None:
            raise JobNotFound(f"no job {job_id!r}")
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    present = set(inspect(engine).get_table_names())
    written: dict[str, int] = {}
    for name, query in job_queries(job_id).items():
        if name not in present:  # an older database without this table
            continue
        table = schema.metadata.tables[name]
        with engine.connect() as connection:
            arrow = arrow_table(table, connection.execute(query))
        pq.write_table(arrow, directory / f"{name}.parquet")
        written[name] = arrow.num_rows
    return written


def write_parquet(rows: Iterable[dict[str, Any]], columns: Sequence[str], path: str,
                  table: Table | None = None) -> int:
    """Rows of dicts (as `results` and `heads` produce) to one Parquet file. A column
    that `table` has gets that column's type; any other is inferred. Returns the count."""
    listed = list(rows)
    fields = []
    for name in columns:
        if table is not None and name in table.c:
            fields.append(pa.field(name, arrow_type(table.c[name])))
        else:
            values = pa.array([row[name] for row in listed])
            fields.append(pa.field(name, pa.string() if values.type == pa.null()
                                   else values.type))
    arrow_schema = pa.schema(fields)
    arrays = [pa.array([row[f.name] for row in listed], type=f.type) for f in arrow_schema]
    pq.write_table(pa.Table.from_arrays(arrays, schema=arrow_schema), path)
    return len(listed)
