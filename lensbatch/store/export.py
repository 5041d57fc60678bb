"""The rows of one job, table by table, for `lensbatch export`.

Walks the schema, so a table added by a later migration is exported as soon as
schema.py describes it: every table with a job_id column (that job's rows), plus the
jobs row, the job's documents and its model's row. The two packed per-document tables
are exported in long form (UNPACKED): head_scores one row per (document, layer, head),
induction_hit_tokens one row per hit; the sharded counters (job_progress, head_totals)
summed over their shards. Rows stream in batches, so memory does not grow with the job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    cast,
    func,
    select,
)

from lensbatch.metrics import HEAD_SCORE_NAMES
from lensbatch.store import schema
from lensbatch.store.jobs import job_row
from lensbatch.store.packing import unpack_bits, unpack_heads, unpack_positions

BATCH_ROWS = 50_000
Batch = list[tuple[Any, ...]]

# The long forms of the packed tables: what a user reads back from the Parquet files.
long_form = MetaData()
HEAD_SCORE_ROWS = Table(
    "head_scores", long_form,
    Column("job_id", String(64), primary_key=True), Column("seq", Integer, primary_key=True),
    Column("layer", Integer, primary_key=True), Column("head", Integer, primary_key=True),
    *(Column(name, Float, nullable=True) for name in HEAD_SCORE_NAMES),
)
HIT_ROWS = Table(
    "induction_hit_tokens", long_form,
    Column("job_id", String(64), primary_key=True), Column("seq", Integer, primary_key=True),
    Column("position", Integer, primary_key=True), Column("novel", Boolean, nullable=False),
)


def _head_rows(row: Any) -> Iterator[tuple[Any, ...]]:
    packed = [row._mapping[name] for name in HEAD_SCORE_NAMES]
    for layer, head, scores in unpack_heads(row.n_heads, packed):
        yield (row.job_id, row.seq, layer, head, *scores)


def _hit_rows(row: Any) -> Iterator[tuple[Any, ...]]:
    positions = unpack_positions(row.positions)
    for position, novel in zip(positions, unpack_bits(row.novel, len(positions)),
                               strict=True):
        yield (row.job_id, row.seq, position, novel)


UNPACKED: dict[str, tuple[Table, Callable[[Any], Iterator[tuple[Any, ...]]]]] = {
    "head_scores": (HEAD_SCORE_ROWS, _head_rows),
    "induction_hit_tokens": (HIT_ROWS, _hit_rows),
}


def unsharded(table: Table) -> Table:
    """A sharded counter table as exported: its columns but `shard`."""
    if table.name not in long_form.tables:
        Table(table.name, long_form, *(Column(c.name, c.type, primary_key=c.primary_key,
                                              nullable=c.nullable)
                                       for c in table.columns if c.name != "shard"))
    return long_form.tables[table.name]


def _summed(table: Table, job_id: str) -> Select[Any]:
    """A sharded table's rows for the job, summed over the shards."""
    keys = [c for c in table.primary_key.columns if c.name != "shard"]
    values = [cast(func.sum(c), c.type).label(c.name) for c in table.columns
              if not c.primary_key]
    return select(*keys, *values).where(table.c.job_id == job_id).group_by(*keys)


def exported_table(name: str) -> Table:
    """How a table of job_queries is written: long form, unsharded, or as it is."""
    table = schema.metadata.tables[name]
    if name in UNPACKED:
        return UNPACKED[name][0]
    return unsharded(table) if "shard" in table.c else table


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
            queries[table.name] = (_summed(table, job_id) if "shard" in table.c
                                   else select(table).where(table.c.job_id == job_id))
    for name, query in queries.items():
        key = schema.metadata.tables[name].primary_key.columns
        queries[name] = query.order_by(*(c for c in key if c.name != "shard"))
    return queries


def _unpacked(rows: Iterable[Any], unpack: Callable[[Any], Iterator[tuple[Any, ...]]],
              size: int) -> Iterator[Batch]:
    batch: Batch = []
    for row in rows:
        batch.extend(unpack(row))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def table_batches(engine: Engine, name: str, query: Select[Any],
                  size: int = BATCH_ROWS) -> Iterator[Batch]:
    """The rows of one job_queries query, `size` at a time (server-side cursor), as
    tuples in the columns' order; packed tables unpacked."""
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=size).execute(
            query)
        if name in UNPACKED:
            yield from _unpacked(result, UNPACKED[name][1], size)
            return
        for partition in result.partitions():
            yield [tuple(row) for row in partition]


def job_tables(engine: Engine, job_id: str) -> Iterator[tuple[Table, Iterator[Batch]]]:
    """(table as exported, its rows for the job in batches) for every table of
    job_queries; JobNotFound first for a wrong id. Read each table's batches before
    the next table."""
    with engine.connect() as connection:
        job_row(connection, job_id)
    for name, query in job_queries(job_id).items():
        yield exported_table(name), table_batches(engine, name, query)
