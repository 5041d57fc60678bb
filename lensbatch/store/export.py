"""The rows of one job, table by table, for `lensbatch export`.

Walks the schema, so a table added by a later migration is exported as soon as
schema.py describes it: every table with a job_id column (that job's rows), plus the
jobs row, the job's documents and its model's row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, Select, Table, select

from lensbatch.store import schema
from lensbatch.store.jobs import job_row


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


def job_tables(engine: Engine, job_id: str) -> Iterator[tuple[Table, list[Any]]]:
    """(table, its rows for the job) for every table of job_queries; JobNotFound first
    for a wrong id."""
    with engine.connect() as connection:
        job_row(connection, job_id)
    for name, query in job_queries(job_id).items():
        with engine.connect() as connection:
            yield schema.metadata.tables[name], list(connection.execute(query))
