"""Reading jobs and results back. Progress is counted from results, never from the broker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from lensbatch import schema
from lensbatch.errors import JobNotFound


@dataclass(frozen=True)
class JobSummary:
    job_id: str
    model: str
    status: str
    error: str | None
    n_documents: int
    n_done: int
    n_tokens: int
    n_predictions: int
    nll_sum: float
    n_correct: int
    induction_candidates: int
    induction_hits: int
    created_at: datetime | None

    @property
    def loss(self) -> float | None:
        """Token-weighted corpus loss: sum(nll_sum) / sum(n_predictions)."""
        return self.nll_sum / self.n_predictions if self.n_predictions else None

    @property
    def accuracy(self) -> float | None:
        return self.n_correct / self.n_predictions if self.n_predictions else None

    @property
    def induction_hit_rate(self) -> float | None:
        if not self.induction_candidates:
            return None
        return self.induction_hits / self.induction_candidates


def job_summary(engine: Engine, job_id: str) -> JobSummary:
    r = schema.results
    with engine.connect() as connection:
        job = connection.execute(
            select(schema.jobs).where(schema.jobs.c.id == job_id)
        ).first()
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        totals = connection.execute(
            select(
                func.count(),
                func.coalesce(func.sum(r.c.n_tokens), 0),
                func.coalesce(func.sum(r.c.n_predictions), 0),
                func.coalesce(func.sum(r.c.nll_sum), 0.0),
                func.coalesce(func.sum(r.c.n_correct), 0),
                func.coalesce(func.sum(r.c.induction_candidates), 0),
                func.coalesce(func.sum(r.c.induction_hits), 0),
            ).where(r.c.job_id == job_id)
        ).one()
    return JobSummary(
        job_id=job.id, model=job.model, status=job.status, error=job.error,
        n_documents=job.n_documents, n_done=int(totals[0]), n_tokens=int(totals[1]),
        n_predictions=int(totals[2]), nll_sum=float(totals[3]), n_correct=int(totals[4]),
        induction_candidates=int(totals[5]), induction_hits=int(totals[6]),
        created_at=job.created_at,
    )


def list_jobs(engine: Engine, limit: int = 50) -> list[JobSummary]:
    with engine.connect() as connection:
        ids = connection.scalars(
            select(schema.jobs.c.id).order_by(schema.jobs.c.created_at.desc()).limit(limit)
        ).all()
    return [job_summary(engine, job_id) for job_id in ids]


RESULT_COLUMNS = ("doc_id", *schema.RESULT_METRICS)


def result_rows(engine: Engine, job_id: str) -> Iterator[dict[str, Any]]:
    """One dict per document with a result, in corpus order: doc_id and every metric."""
    r, jd = schema.results, schema.job_documents
    query = (
        select(jd.c.doc_id, *(r.c[name] for name in schema.RESULT_METRICS))
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


# `lensbatch heads`: per-head means over the job's documents, and the probe's scores.
HEAD_COLUMNS = ("layer", "head", "n_documents", *schema.HEAD_SCORES,
                "probe_induction_score", "probe_prev_token_score")


def job_probe(engine: Engine, job_id: str) -> ProbeSummary | None:
    p = schema.probes
    with engine.connect() as connection:
        row = connection.execute(select(p).where(p.c.job_id == job_id)).first()
    if row is None:
        return None
    return ProbeSummary(row.model, row.n_tokens, row.first_copy_loss, row.second_copy_loss)


def head_rows(engine: Engine, job_id: str) -> list[dict[str, Any]]:
    """One dict per (layer, head): HEAD_COLUMNS. Scores are means over the documents
    (induction_score over those with a repeated token); probe scores may come alone."""
    h, ph = schema.head_scores, schema.probe_heads
    aggregate = (
        select(h.c.layer, h.c.head, func.count().label("n_documents"),
               *(func.avg(h.c[name]).label(name) for name in schema.HEAD_SCORES))
        .where(h.c.job_id == job_id)
        .group_by(h.c.layer, h.c.head)
    )
    probe = select(ph.c.layer, ph.c.head, ph.c.induction_score, ph.c.prev_token_score).where(
        ph.c.job_id == job_id)
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    with engine.connect() as connection:
        for row in connection.execute(aggregate):
            rows[(row.layer, row.head)] = {**dict.fromkeys(HEAD_COLUMNS), **row._mapping}
        for row in connection.execute(probe):
            entry = rows.setdefault((row.layer, row.head), {
                **dict.fromkeys(HEAD_COLUMNS), "layer": row.layer, "head": row.head,
                "n_documents": 0})
            entry["probe_induction_score"] = row.induction_score
            entry["probe_prev_token_score"] = row.prev_token_score
    return [{key: rows[k][key] for key in HEAD_COLUMNS} for k in sorted(rows)]
