"""Which of a job's documents are still to do: one query that the worker (what to
evaluate), `resume` (what to queue again) and progress (what is left) share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, select

from lensbatch.store import schema


def documents_without_result(job_id: str, *columns: Any, failed: bool = False) -> Select:
    """SELECT `columns` (of job_documents and documents) for the job's documents that have
    no result and have not failed for good, or, with `failed`, exactly those that have."""
    jd, docs, res = schema.job_documents, schema.documents, schema.results
    fails = schema.document_failures
    return (
        select(*columns)
        .select_from(jd)
        .join(docs, docs.c.id == jd.c.document_id)
        .outerjoin(res, and_(res.c.job_id == jd.c.job_id, res.c.seq == jd.c.seq))
        .outerjoin(fails, and_(fails.c.job_id == jd.c.job_id, fails.c.seq == jd.c.seq,
                               fails.c.final.is_(True)))
        .where(jd.c.job_id == job_id, res.c.seq.is_(None))
        .where(fails.c.seq.is_not(None) if failed else fails.c.seq.is_(None))
    )
