"""Which of a job's documents are still to do: one query that the worker (what to
evaluate), `resume` (what to queue again) and progress (what is left) share, and the
job's end once nothing is left."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, and_, func, select, update

from lensbatch.status import ACTIVE, JobStatus
from lensbatch.store import schema
from lensbatch.store.clock import now
from lensbatch.store.totals import documents_done


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


def count_final_failures(connection: Connection, job_id: str) -> int:
    table = schema.document_failures
    return int(connection.scalar(
        select(func.count()).select_from(table).where(
            table.c.job_id == job_id, table.c.final.is_(True))
    ) or 0)


def finish_if_complete(connection: Connection, job_id: str) -> None:
    """Mark the job done once every document has a result or has failed for good."""
    finished = documents_done(job_id) + count_final_failures(connection, job_id)
    connection.execute(
        update(schema.jobs)
        .where(
            schema.jobs.c.id == job_id,
            schema.jobs.c.status.in_(ACTIVE),
            schema.jobs.c.n_documents <= finished,
        )
        .values(status=JobStatus.DONE, finished_at=now())
    )
