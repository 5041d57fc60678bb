"""A job's life in the database: created with its documents, failed, cancelled, resumed.

Every function is one transaction. Resume and cancel are worked out from the database
alone, never from broker state. A corpus is stored as it is read, chunk by chunk, and
planned into runs of consecutive documents: memory does not grow with the corpus. A
duplicate document id is caught by the job_documents unique constraint.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from lensbatch.corpus import chunked, read_corpus
from lensbatch.errors import JobNotFound, UserError
from lensbatch.jobspec import JobSpec
from lensbatch.planning import TaskList, TaskPlanner
from lensbatch.status import FINISHED, JobStatus
from lensbatch.store import schema
from lensbatch.store.clock import now
from lensbatch.store.docstate import documents_without_result
from lensbatch.store.ingest import store_chunk

INSERT_CHUNK = 10_000


@dataclass(frozen=True)
class PlannedJob:
    job_id: str
    tasks: TaskList  # document seqs per task
    n_documents: int


def job_row(connection: Connection, job_id: str) -> Any:
    """The jobs row, or JobNotFound."""
    job = connection.execute(select(schema.jobs).where(schema.jobs.c.id == job_id)).first()
    if job is None:
        raise JobNotFound(f"no job {job_id!r}")
    return job


def create_job(engine: Engine, corpus: str, spec: JobSpec) -> PlannedJob:
    """Store the corpus and the job in one transaction; a bad corpus leaves nothing."""
    job_id = uuid.uuid4().hex[:16]
    planner = TaskPlanner(spec.task_tokens)
    n_docs = n_chars = 0
    with engine.begin() as connection:
        connection.execute(schema.jobs.insert().values(
            id=job_id, model=spec.model, settings=spec.to_json(), status=JobStatus.QUEUED,
            corpus=corpus, n_documents=0, n_tasks=0, created_at=now(),
        ))
        for chunk in chunked(read_corpus(corpus), INSERT_CHUNK):
            store_chunk(connection, job_id, n_docs, chunk)
            for i, doc in enumerate(chunk):
                planner.add(n_docs + i, len(doc.text))
                n_chars += len(doc.text)
            n_docs += len(chunk)
        connection.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(
            n_documents=n_docs, n_tasks=len(planner.tasks), n_chars=n_chars
        ))
    return PlannedJob(job_id, planner.tasks, n_docs)


def fail_job(engine: Engine, job_id: str, message: str) -> None:
    """The job cannot run at all (its model cannot load, say)."""
    with engine.begin() as connection:
        connection.execute(
            update(schema.jobs)
            .where(schema.jobs.c.id == job_id, schema.jobs.c.status.not_in(FINISHED))
            .values(status=JobStatus.FAILED, error=message, finished_at=now())
        )


class JobFinished(UserError):
    """The job cannot be cancelled: it has already finished."""


def cancel_job(engine: Engine, job_id: str) -> None:
    """Mark the job cancelled; workers then drop its tasks without evaluating them."""
    with engine.begin() as connection:
        job = job_row(connection, job_id)
        if job.status in FINISHED:
            raise JobFinished(f"job {job_id} is already {job.status}")
        connection.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(
            status=JobStatus.CANCELLED, finished_at=now()))


@dataclass(frozen=True)
class ResumePlan:
    job_id: str
    queue: str
    seqs: list[int]  # the documents re-enqueued
    tasks: TaskList


def plan_resume(engine: Engine, job_id: str, failed_only: bool = False) -> ResumePlan:
    """Find the documents without a result and mark the job queued again if any.

    failed_only: only the documents recorded as failed, whose attempts start over.
    """
    jd, docs = schema.job_documents, schema.documents
    with engine.begin() as connection:
        job = job_row(connection, job_id)
        query = documents_without_result(job_id, jd.c.seq, docs.c.n_chars,
                                         failed=failed_only).order_by(jd.c.seq)
        missing = [(row.seq, row.n_chars) for row in connection.execute(query)]
        seqs = [seq for seq, _ in missing]
        if failed_only and seqs:
            connection.execute(delete(schema.document_failures).where(
                schema.document_failures.c.job_id == job_id,
                schema.document_failures.c.seq.in_(seqs)))
        if seqs:
            connection.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(
                status=JobStatus.QUEUED, error=None, finished_at=None))
    spec = JobSpec.from_json(job.settings)
    planner = TaskPlanner(spec.task_tokens)
    for seq, n_chars in missing:
        planner.add(seq, n_chars)
    return ResumePlan(job_id, spec.queue, seqs, planner.tasks)
