"""Reading jobs and results back. Progress is counted from results, never from the broker.

Corpus numbers come from the metric registry (lensbatch/metrics.py): every summed metric
is summed in SQL, and every rate is worked out from those sums.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select

from lensbatch.metrics import DOC_METRICS, HEAD_SCORE_NAMES, LISTED_METRICS, PROBE_SCORES
from lensbatch.metrics import corpus_value as _corpus_value
from lensbatch.store import schema
from lensbatch.store.jobs import job_row

SUMMED = tuple(m.name for m in DOC_METRICS if m.corpus == "sum")


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


def _summary(connection: Connection, job: Any) -> JobSummary:
    r = schema.results
    row = connection.execute(
        select(func.count(), *(func.coalesce(func.sum(r.c[name]), 0) for name in SUMMED))
        .where(r.c.job_id == job.id)
    ).one()
    totals = {name: float(value) for name, value in zip(SUMMED, row[1:], strict=True)}
    return JobSummary(job_id=job.id, model=job.model, status=job.status, error=job.error,
                      n_documents=job.n_documents, n_done=int(row[0]), totals=totals,
                      created_at=job.created_at, sweep=sweep_place(job))


def sweep_place(job: Any) -> SweepPlace | None:
    """A jobs row's place in its sweep, or None."""
    if job.sweep_id is None:
        return None
    return SweepPlace(job.sweep_id, int(job.sweep_index or 0), job.sweep_step)


def job_summary(engine: Engine, job_id: str) -> JobSummary:
    """A job's state and corpus numbers; JobNotFound for a wrong id."""
    with engine.connect() as connection:
        return _summary(connection, job_row(connection, job_id))


def list_jobs(engine: Engine, limit: int = 50) -> list[JobSummary]:
    with engine.connect() as connection:
        jobs = connection.execute(
            select(schema.jobs).order_by(schema.jobs.c.created_at.desc()).limit(limit)
        ).all()
        return [_summary(connection, job) for job in jobs]


RESULT_COLUMNS = ("doc_id", *LISTED_METRICS)


def result_rows(engine: Engine, job_id: str) -> Iterator[dict[str, Any]]:
    """One dict per document with a result, in corpus order: doc_id and every listed
    metric."""
    r, jd = schema.results, schema.job_documents
    query = (
        select(jd.c.doc_id, *(r.c[name] for name in LISTED_METRICS))
        .join(jd, (jd.c.job_id == r.c.job_id) & (jd.c.seq == r.c.seq))
        .where(r.c.job_id == job_id)
        .order_by(r.c.seq)
    )
    with engine.connect() as connection:
        for row in connection.execute(query):
            yield dict(row._mapping)


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
    leaves that document out), and n_documents."""
    h = schema.head_scores
    query = (select(h.c.layer, h.c.head, func.count().label("n_documents"),
                    *(func.avg(h.c[name]).label(name) for name in HEAD_SCORE_NAMES))
             .where(h.c.job_id == job_id).group_by(h.c.layer, h.c.head)
             .order_by(h.c.layer, h.c.head))
    with engine.connect() as connection:
        return list(connection.execute(query))


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
