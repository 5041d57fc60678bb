"""What head ablations read: a mean ablation's reference documents, and an ablation
sweep's jobs with their paired per-document differences from the unablated job, summed
in SQL (a few numbers per job, whatever the number of documents)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Float, cast, func, select

from lensbatch.jobspec import Head, JobSpec
from lensbatch.metrics import DOC_METRICS, Ratio
from lensbatch.store import schema

# (rate, numerator, denominator) for every rate of the registry.
RATE_PARTS = tuple((m.name, m.corpus.numerator, m.corpus.denominator)
                   for m in DOC_METRICS if isinstance(m.corpus, Ratio))


def reference_texts(engine: Engine, job_id: str, n: int) -> list[str]:
    """The texts of the job's first `n` documents, in corpus order."""
    d, jd = schema.documents, schema.job_documents
    with engine.connect() as connection:
        return list(connection.scalars(
            select(d.c.text).join(jd, jd.c.document_id == d.c.id)
            .where(jd.c.job_id == job_id).order_by(jd.c.seq).limit(n)))


@dataclass(frozen=True)
class AblationJob:
    job_id: str
    model: str
    heads: tuple[Head, ...]  # () for the unablated job
    ablation: str
    status: str


def ablation_jobs(engine: Engine, sweep_id: str) -> list[AblationJob]:
    """A sweep's jobs in order, with the heads each ablates ([] for no such sweep)."""
    j = schema.jobs
    with engine.connect() as connection:
        rows = connection.execute(
            select(j.c.id, j.c.model, j.c.settings, j.c.status)
            .where(j.c.sweep_id == sweep_id).order_by(j.c.sweep_index)).all()
    specs = [JobSpec.from_json(row.settings) for row in rows]
    return [AblationJob(row.id, row.model, spec.ablate, spec.ablation, row.status)
            for row, spec in zip(rows, specs, strict=True)]


def difference_sums(engine: Engine, baseline: str, job_ids: list[str]) -> dict[str, Any]:
    """Per job of `job_ids`: its documents paired with the baseline's by seq (the jobs
    of one sweep share their documents), `n` and, for each rate with numerator a and
    denominator b, the sums over those documents of d = a_job - a_baseline, b, d*d, d*b
    and b*b (named `rate:d`, `rate:b`, ...). One aggregate query for all the jobs."""
    r = schema.results
    base = r.alias("base")
    columns: list[Any] = [r.c.job_id, func.count().label("n")]
    for name, numerator, denominator in RATE_PARTS:
        d = cast(r.c[numerator], Float) - cast(base.c[numerator], Float)
        b = cast(base.c[denominator], Float)
        columns += [func.sum(d).label(f"{name}:d"), func.sum(b).label(f"{name}:b"),
                    func.sum(d * d).label(f"{name}:dd"), func.sum(d * b).label(f"{name}:db"),
                    func.sum(b * b).label(f"{name}:bb")]
    query = (select(*columns)
             .join(base, (base.c.job_id == baseline) & (base.c.seq == r.c.seq))
             .where(r.c.job_id.in_(job_ids)).group_by(r.c.job_id))
    with engine.connect() as connection:
        return {row.job_id: row._mapping for row in connection.execute(query)}
