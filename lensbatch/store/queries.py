"""Reading jobs and results back. Progress comes from the database, never from the broker.

Corpus numbers come from the metric registry (lensbatch/metrics.py): every summed metric
is summed as results are written (the job's counters, lensbatch/store/totals.py), and
every rate is worked out from those sums. A job's size changes none of these reads;
the per-document ones (`results`) stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, and_, func, select

from lensbatch.ablation import job_label
from lensbatch.docmeta import Fields, column_names, column_value, stored_fields
from lensbatch.jobspec import Head, JobSpec
from lensbatch.metrics import LISTED_METRICS
from lensbatch.metrics import corpus_value as _corpus_value
from lensbatch.store import schema
from lensbatch.store.jobs import job_row
from lensbatch.store.totals import moments, progress

# Rows fetched at a time by the queries that stream (a server-side cursor on PostgreSQL).
STREAM_ROWS = 50_000
COPY_CHUNK = 1 << 20  # bytes of CSV handed on at a time by result_csv


@dataclass(frozen=True)
class SweepPlace:
    sweep_id: str
    index: int  # from 0, in the order the models were given
    step: int | None  # training step, where one was given


@dataclass(frozen=True)
class JobSummary:
    job_id: str
    model: str
    status: str
    error: str | None
    n_documents: int
    n_done: int
    totals: dict[str, float]  # every summed metric over the documents with results
    created_at: datetime | None
    sweep: SweepPlace | None = None  # the job's place in a sweep, if it is in one
    corpus: str = ""  # the corpus as it was given (a path, or - for standard input)
    ablate: tuple[Head, ...] = ()  # the heads the job switches off (--ablate)
    ablation: str = "zero"  # how: zero or mean

    @property
    def label(self) -> str:
        """The model, and the heads ablated if any: `toy-induction -1.2 (zero)`."""
        return job_label(self.model, self.ablate, self.ablation)

    def value(self, name: str) -> float | None:
        """The corpus number of a registry metric (a sum, or a rate of sums)."""
        return _corpus_value(name, self.totals)

    @property
    def n_tokens(self) -> int:
        return int(self.totals["n_tokens"])

    @property
    def loss(self) -> float | None:
        """Token-weighted corpus loss: sum(nll_sum) / sum(n_predictions)."""
        return self.value("loss")


def _summaries(connection: Connection, jobs: list[Any]) -> list[JobSummary]:
    counters = progress(connection, [job.id for job in jobs])
    specs = [JobSpec.from_json(job.settings) for job in jobs]
    return [JobSummary(job_id=job.id, model=job.model, status=job.status, error=job.error,
                       n_documents=job.n_documents, n_done=counters[job.id][0],
                       totals=counters[job.id][1], created_at=job.created_at,
                       sweep=sweep_place(job), corpus=job.corpus, ablate=spec.ablate,
                       ablation=spec.ablation)
            for job, spec in zip(jobs, specs, strict=True)]


def sweep_place(job: Any) -> SweepPlace | None:
    """A jobs row's place in its sweep, or None."""
    if job.sweep_id is None:
        return None
    return SweepPlace(job.sweep_id, int(job.sweep_index or 0), job.sweep_step)


def job_summary(engine: Engine, job_id: str) -> JobSummary:
    """A job's state and corpus numbers; JobNotFound for a wrong id."""
    with engine.connect() as connection:
        return _summaries(connection, [job_row(connection, job_id)])[0]


def job_moments(engine: Engine, job_id: str) -> dict[str, float]:
    """The job's counters' sums of products (lensbatch/metrics.py MOMENTS)."""
    with engine.connect() as connection:
        return moments(connection, job_id)


def list_jobs(engine: Engine, limit: int | None = 50) -> list[JobSummary]:
    """The newest `limit` jobs, newest first (None: every job)."""
    with engine.connect() as connection:
        jobs = connection.execute(
            select(schema.jobs).order_by(schema.jobs.c.created_at.desc()).limit(limit)
        ).all()
        return _summaries(connection, list(jobs))


RESULT_COLUMNS = ("doc_id", *LISTED_METRICS)  # then a column per metadata field


@dataclass(frozen=True)
class ResultLayout:
    """The columns of a job's `results`: RESULT_COLUMNS, then one per metadata field of
    its documents (lensbatch/docmeta.py), in first-seen order."""

    fields: Fields  # (field, kind)

    @property
    def metadata_columns(self) -> list[str]:
        return column_names(self.fields, RESULT_COLUMNS)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*RESULT_COLUMNS, *self.metadata_columns)

    @property
    def kinds(self) -> dict[str, str]:
        """Each metadata column's kind."""
        return dict(zip(self.metadata_columns, (kind for _, kind in self.fields),
                        strict=True))


def result_layout(engine: Engine, job_id: str) -> ResultLayout:
    """The job's result columns; JobNotFound for a wrong id."""
    with engine.connect() as connection:
        return ResultLayout(stored_fields(job_row(connection, job_id).metadata_fields))


def _result_query(job_id: str, extra: tuple[Any, ...] = ()) -> Select[Any]:
    r, jd = schema.results, schema.job_documents
    return (select(jd.c.doc_id, *(r.c[name] for name in LISTED_METRICS), *extra)
            .join(jd, (jd.c.job_id == r.c.job_id) & (jd.c.seq == r.c.seq))
            .where(r.c.job_id == job_id)
            .order_by(r.c.seq))


def _with_metadata(row: Any, fields: Fields) -> tuple[Any, ...]:
    """A row of _result_query with the metadata column last, that column spread into
    one value per field."""
    *values, stored = row
    if isinstance(stored, str):  # a JSON column read as text by a driver
        stored = json.loads(stored)
    stored = stored or {}
    return (*values, *(column_value(kind, stored.get(name)) for name, kind in fields))


def result_batches(engine: Engine, job_id: str,
                   size: int = STREAM_ROWS) -> Iterator[list[tuple[Any, ...]]]:
    """The job's results in corpus order, `size` rows at a time, each row a tuple of
    result_layout(...).columns (doc_id, every listed metric, every metadata field): a
    server-side cursor, so memory does not grow with the job."""
    fields = result_layout(engine, job_id).fields
    extra = (schema.job_documents.c.metadata,) if fields else ()
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=size).execute(
            _result_query(job_id, extra))
        for partition in result.partitions():
            if fields:
                yield [_with_metadata(row, fields) for row in partition]
            else:
                yield [tuple(row) for row in partition]


def result_rows(engine: Engine, job_id: str) -> Iterator[dict[str, Any]]:
    """One dict per document with a result, in corpus order: doc_id, every listed
    metric and every metadata field (result_layout's columns)."""
    columns = result_layout(engine, job_id).columns
    for batch in result_batches(engine, job_id):
        for row in batch:
            yield dict(zip(columns, row, strict=True))


def result_csv(engine: Engine, job_id: str) -> Iterator[bytes] | None:
    """On PostgreSQL, the job's results as CSV (result_layout's columns, no header,
    NULL an unquoted empty field, floats in the shortest form that reads back exactly;
    a metadata field as PostgreSQL's ->> gives it), in corpus order, as COPY sends it,
    in chunks of about a megabyte: PostgreSQL formats every row. None on other
    databases."""
    if engine.dialect.name != "postgresql":
        return None
    metadata = schema.job_documents.c.metadata
    fields = result_layout(engine, job_id).fields
    return _copy_out(engine, _result_query(job_id, tuple(
        metadata[name].as_string() for name, _ in fields)))


def _copy_out(engine: Engine, query: Select[Any]) -> Iterator[bytes]:
    compiled = query.compile(dialect=engine.dialect)  # placeholders, bound by psycopg
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)",
                             compiled.params) as copy:
                pending = bytearray()
                for row in copy:  # COPY sends one message per row
                    pending += row
                    if len(pending) >= COPY_CHUNK:
                        yield bytes(pending)
                        pending.clear()
                if pending:
                    yield bytes(pending)


def failed_documents(engine: Engine, job_id: str) -> list[dict[str, Any]]:
    """doc_id, attempts and error of each document that failed for good."""
    jd, fails = schema.job_documents, schema.document_failures
    query = (
        select(jd.c.doc_id, fails.c.attempts, fails.c.error)
        .join(jd, and_(jd.c.job_id == fails.c.job_id, jd.c.seq == fails.c.seq))
        .where(fails.c.job_id == job_id, fails.c.final.is_(True))
        .order_by(fails.c.seq)
    )
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def job_status(engine: Engine, job_id: str) -> str:
    """Just the status: cheap enough to poll."""
    with engine.connect() as connection:
        return str(job_row(connection, job_id).status)


def result_writers(engine: Engine, job_id: str) -> int:
    """How many distinct workers wrote the job's results."""
    r = schema.results
    with engine.connect() as connection:
        return int(connection.scalar(
            select(func.count(r.c.worker.distinct())).where(r.c.job_id == job_id)) or 0)
