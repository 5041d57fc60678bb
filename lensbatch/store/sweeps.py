"""Sweeps and comparisons: which jobs an id stands for, and the per-document sums that
intervals and paired differences are worked out from (lensbatch/compare.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from lensbatch.errors import JobNotFound
from lensbatch.metrics import DOC_METRICS
from lensbatch.store import schema

SUMMED = tuple(m.name for m in DOC_METRICS if m.corpus == "sum")


@dataclass(frozen=True)
class SweepJob:
    job_id: str
    model: str
    index: int
    step: int | None
    status: str


def sweep_jobs(engine: Engine, sweep_id: str) -> list[SweepJob]:
    """The jobs of a sweep in the order their models were given ([] for no such sweep)."""
    j = schema.jobs
    with engine.connect() as connection:
        rows = connection.execute(
            select(j.c.id, j.c.model, j.c.sweep_index, j.c.sweep_step, j.c.status)
            .where(j.c.sweep_id == sweep_id).order_by(j.c.sweep_index)).all()
    return [SweepJob(row.id, row.model, int(row.sweep_index or 0), row.sweep_step, row.status)
            for row in rows]


def resolve_jobs(engine: Engine, ids: list[str]) -> list[str]:
    """Job ids for `ids`, each a job id or a sweep id (its jobs, in order); JobNotFound
    names the first id that is neither."""
    j = schema.jobs
    found: list[str] = []
    with engine.connect() as connection:
        known = set(connection.scalars(select(j.c.id).where(j.c.id.in_(ids))))
    for name in ids:
        if name in known:
            found.append(name)
            continue
        members = sweep_jobs(engine, name)
        if not members:
            raise JobNotFound(f"no job or sweep {name!r}")
        found.extend(member.job_id for member in members)
    return found


def document_sums(engine: Engine, job_id: str) -> list[Any]:
    """Per document with a result, in corpus order: seq, document_id (the stored text,
    shared by every job over it), doc_id and every summed metric of the registry."""
    r, jd = schema.results, schema.job_documents
    query = (select(r.c.seq, jd.c.document_id, jd.c.doc_id, *(r.c[name] for name in SUMMED))
             .join(jd, (jd.c.job_id == r.c.job_id) & (jd.c.seq == r.c.seq))
             .where(r.c.job_id == job_id).order_by(r.c.seq))
    with engine.connect() as connection:
        return list(connection.execute(query))
