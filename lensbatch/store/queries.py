"""Reading jobs and results back. Progress comes from the database, never from the broker.

Corpus numbers come from the metric registry (lensbatch/metrics.py): every summed metric
is summed as results are written (the job's counters, lensbatch/store/totals.py), and
every rate is worked out from those sums. A job's size changes none of these reads;
the per-document ones (`results`) stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, and_, func, select

from lensbatch.metrics import HEAD_SCORE_NAMES, LISTED_METRICS, PROBE_SCORES
from lensbatch.metrics import corpus_value as _corpus_value
from lensbatch.store import schema
from lensbatch.store.jobs import job_row
from lensbatch.store.packing import unpack_heads
from lensbatch.store.totals import head_mean_rows, moments, progress

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
    return [JobSummary(job_id=job.id, model=job.model, status=job.status, error=job.error,
                       n_documents=job.n_documents, n_done=counters[job.id][0],
                       totals=counters[job.id][1], created_at=job.created_at,
                       sweep=sweep_place(job), corpus=job.corpus)
            for job in jobs]


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


def list_jobs(engine: Engine, limit: int = 50) -> list[JobSummary]:
    with engine.connect() as connection:
        jobs = connection.execute(
            select(schema.jobs).order_by(schema.jobs.c.created_at.desc()).limit(limit)
        ).all()
        return _summaries(connection, list(jobs))


RESULT_COLUMNS = ("doc_id", *LISTED_METRICS)


def _result_query(job_id: str) -> Select[Any]:
    r, jd = schema.results, schema.job_documents
    return (select(jd.c.doc_id, *(r.c[name] for name in LISTED_METRICS))
            .join(jd, (jd.c.job_id == r.c.job_id) & (jd.c.seq == r.c.seq))
            .where(r.c.job_id == job_id)
            .order_by(r.c.seq))


def result_batches(engine: Engine, job_id: str,
                   size: int = STREAM_ROWS) -> Iterator[list[tuple[Any, ...]]]:
    """The job's results in corpus order, `size` rows at a time, each row a tuple of
    RESULT_COLUMNS (doc_id and every listed metric): a server-side cursor, so memory
    does not grow with the job."""
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=size).execute(
            _result_query(job_id))
        for partition in result.partitions():
            yield [tuple(row) for row in partition]


def result_rows(engine: Engine, job_id: str) -> Iterator[dict[str, Any]]:
    """One dict per document with a result, in corpus order: doc_id and every listed
    metric."""
    for batch in result_batches(engine, job_id):
        for row in batch:
            yield dict(zip(RESULT_COLUMNS, row, strict=True))


def result_csv(engine: Engine, job_id: str) -> Iterator[bytes] | None:
    """On PostgreSQL, the job's results as CSV (RESULT_COLUMNS, no header, NULL an
    unquoted empty field, floats in the shortest form that reads back exactly), in
    corpus order, as COPY sends it, in chunks of about a megabyte: PostgreSQL formats
    every row. None on other databases."""
    if engine.dialect.name != "postgresql":
        return None
    return _copy_out(engine, _result_query(job_id))


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


@dataclass(frozen=True)
class ProbeSummary:
    model: str
    n_tokens: int
    first_copy_loss: float | None
    second_copy_loss: float | None


def job_probe(engine: Engine, job_id: str) -> ProbeSummary | None:
    p = schema.probes
    with engine.connect() as connection:
        row = connection.execute(select(p).where(p.c.job_id == job_id)).first()
    if row is None:
        return None
    return ProbeSummary(row.model, row.n_tokens, row.first_copy_loss, row.second_copy_loss)


def probe_head_rows(engine: Engine, job_id: str) -> list[Any]:
    """The probe's per-head scores: layer, head and PROBE_SCORES."""
    ph = schema.probe_heads
    with engine.connect() as connection:
        return list(connection.execute(
            select(ph.c.layer, ph.c.head, *(ph.c[name] for name in PROBE_SCORES))
            .where(ph.c.job_id == job_id).order_by(ph.c.layer, ph.c.head)))


def head_means(engine: Engine, job_id: str) -> list[Any]:
    """Per (layer, head): every head score averaged over the job's documents (a score
    that is null for a document, such as induction_score without a repeated token,
    leaves that document out), and n_documents; from the job's per-head sums."""
    with engine.connect() as connection:
        return head_mean_rows(connection, job_id)


# `lensbatch heads`: per-head means over the job's documents, and the probe's scores.
HEAD_COLUMNS = ("layer", "head", "n_documents", *HEAD_SCORE_NAMES,
                *(f"probe_{name}" for name in PROBE_SCORES))


def head_rows(engine: Engine, job_id: str) -> list[dict[str, Any]]:
    """One dict per (layer, head): HEAD_COLUMNS. Probe scores may come alone."""
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for row in head_means(engine, job_id):
        rows[(row.layer, row.head)] = {**dict.fromkeys(HEAD_COLUMNS), **row._mapping}
    for row in probe_head_rows(engine, job_id):
        entry = rows.setdefault((row.layer, row.head), {
            **dict.fromkeys(HEAD_COLUMNS), "layer": row.layer, "head": row.head,
            "n_documents": 0})
        entry.update({f"probe_{name}": row._mapping[name] for name in PROBE_SCORES})
    return [{key: rows[k][key] for key in HEAD_COLUMNS} for k in sorted(rows)]


# `lensbatch heads --per-document`: every document's per-head scores, unpacked.
DOCUMENT_HEAD_COLUMNS = ("doc_id", "layer", "head", *HEAD_SCORE_NAMES)


def document_head_rows(engine: Engine, job_id: str) -> Iterator[dict[str, Any]]:
    """One dict per (document, layer, head) of a job that kept per-document head
    scores (`--head-scores document`), in corpus order: DOCUMENT_HEAD_COLUMNS."""
    h, jd = schema.head_scores, schema.job_documents
    query = (select(jd.c.doc_id, h).join(jd, (jd.c.job_id == h.c.job_id)
                                         & (jd.c.seq == h.c.seq))
             .where(h.c.job_id == job_id).order_by(h.c.seq))
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=1000).execute(
            query)
        for row in result:
            packed = [row._mapping[name] for name in HEAD_SCORE_NAMES]
            for layer, head, scores in unpack_heads(row.n_heads, packed):
                yield {"doc_id": row.doc_id, "layer": layer, "head": head,
                       **dict(zip(HEAD_SCORE_NAMES, scores, strict=True))}


def has_document_heads(engine: Engine, job_id: str) -> bool:
    h = schema.head_scores
    with engine.connect() as connection:
        return connection.execute(select(h.c.seq).where(h.c.job_id == job_id)
                                  .limit(1)).first() is not None


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
