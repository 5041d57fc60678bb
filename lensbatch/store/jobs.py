"""A job's life in the database: created with its documents, failed, cancelled, resumed.

Every function is one transaction. Resume and cancel are worked out from the database
alone, never from broker state.

Concurrent submits share documents (stored once, by content hash). On PostgreSQL two
transactions inserting the same new documents in different orders would deadlock, each
waiting for the other's uncommitted rows. So one submit at a time inserts documents (a
transaction-level advisory lock, taken before the first document and held to the
commit), each chunk in content-hash order; and a transaction that loses a deadlock or
a serialization conflict with any other writer runs again, reading the corpus again.

A corpus is stored as it is read, chunk by chunk (lensbatch/store/ingest.py), and planned
into runs of consecutive documents: memory does not grow with the corpus. A duplicate
document id is caught by the job_documents unique constraint.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy.exc import DBAPIError

from lensbatch.corpus import DEFAULT_MAX_DOCUMENT_BYTES, chunked, read_corpus
from lensbatch.docmeta import FieldKinds
from lensbatch.errors import JobNotFound, UserError
from lensbatch.jobspec import JobSpec
from lensbatch.planning import TaskList, TaskPlanner
from lensbatch.status import FINISHED, JobStatus
from lensbatch.store import schema
from lensbatch.store.attempts import reset_attempts
from lensbatch.store.clock import now
from lensbatch.store.docstate import documents_without_result
from lensbatch.store.ingest import store_chunk

INSERT_CHUNK = 10_000
# pg_advisory_xact_lock key held by a transaction that inserts documents (distinct from
# migrations/env.py's).
DOCUMENTS_LOCK_KEY = 7_316_204_912
# SQLSTATEs of a transaction that lost a conflict and may simply run again.
CONFLICT_SQLSTATES = {"40P01": "deadlock", "40001": "serialization failure"}
CREATE_ATTEMPTS = 5

log = logging.getLogger("lensbatch.store")


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


@dataclass(frozen=True)
class Member:
    """One job of a submission: its options and, for a training checkpoint, its step."""

    spec: JobSpec
    step: int | None = None


@dataclass(frozen=True)
class Created:
    """The jobs of one submission, in order; sweep_id is None for a single job."""

    jobs: list[PlannedJob]
    sweep_id: str | None


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def _create_jobs_once(engine: Engine, corpus: str, members: list[Member],
                      max_document_bytes: int) -> Created:
    sweep_id = new_id() if len(members) > 1 else None
    job_ids = [new_id() for _ in members]
    planner = TaskPlanner(members[0].spec.task_tokens)  # a sweep's jobs share options
    n_docs = n_chars = 0
    fields = FieldKinds()
    with engine.begin() as connection:
        connection.execute(schema.jobs.insert(), [{
            "id": job_id, "model": member.spec.model, "settings": member.spec.to_json(),
            "status": JobStatus.QUEUED, "corpus": corpus, "n_documents": 0, "n_tasks": 0,
            "created_at": now(), "sweep_id": sweep_id,
            "sweep_index": index if sweep_id else None, "sweep_step": member.step,
        } for index, (job_id, member) in enumerate(zip(job_ids, members, strict=True))])
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(DOCUMENTS_LOCK_KEY)))
        for chunk in chunked(read_corpus(corpus, max_document_bytes), INSERT_CHUNK):
            store_chunk(connection, job_ids, n_docs, chunk)
            for i, doc in enumerate(chunk):
                planner.add(n_docs + i, len(doc.text))
                n_chars += len(doc.text)
                fields.add(doc.metadata, doc.where)
            n_docs += len(chunk)
        connection.execute(update(schema.jobs).where(schema.jobs.c.id.in_(job_ids)).values(
            n_documents=n_docs, n_tasks=len(planner.tasks), n_chars=n_chars,
            metadata_fields=fields.fields()))
    return Created([PlannedJob(job_id, planner.tasks, n_docs) for job_id in job_ids],
                   sweep_id)


def conflict(exc: DBAPIError) -> str | None:
    """'deadlock' or 'serialization failure' for a transaction that lost a conflict and
    may run again, else None."""
    return CONFLICT_SQLSTATES.get(str(getattr(exc.orig, "sqlstate", "")))


def create_jobs(engine: Engine, corpus: str, members: list[Member],
                max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> Created:
    """Store the corpus once and one job per member over the same documents, in one
    transaction; several members form a sweep. A bad corpus leaves nothing.

    A transaction that loses a deadlock or a serialization conflict runs again.
    """
    if not members:
        raise UserError("no model given")
    attempt = 1
    while True:
        try:
            return _create_jobs_once(engine, corpus, members, max_document_bytes)
        except DBAPIError as exc:
            lost = conflict(exc)
            if lost is None or attempt == CREATE_ATTEMPTS:
                raise
            log.warning("storing the job lost a %s; trying again", lost)
            time.sleep(random.uniform(0.05, 0.25) * attempt)
            attempt += 1


def create_job(engine: Engine, corpus: str, spec: JobSpec,
               max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> PlannedJob:
    """Store the corpus and the job in one transaction; a bad corpus leaves nothing."""
    return create_jobs(engine, corpus, [Member(spec)], max_document_bytes).jobs[0]


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

    failed_only: only the documents recorded as failed. The attempts of the documents
    queued again start over.
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
            reset_attempts(connection, job_id, seqs)
            connection.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(
                status=JobStatus.QUEUED, error=None, finished_at=None))
    spec = JobSpec.from_json(job.settings)
    planner = TaskPlanner(spec.task_tokens)
    for seq, n_chars in missing:
        planner.add(seq, n_chars)
    return ResumePlan(job_id, spec.queue, seqs, planner.tasks)
