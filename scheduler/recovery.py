"""Resume and cancel, worked out from the database alone (never from broker state)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, select, update

from lensbatch import schema
from lensbatch.docstate import documents_without_result
from lensbatch.errors import JobNotFound, UserError
from scheduler.jobs import TaskPlanner, estimate_tokens

FINISHED = ("done", "failed", "cancelled")
# A worker whose heartbeat (every 5 s) is older than this is shown as lost: it was
# killed or cut off without shutting down.
STALE_SECONDS = 30


class JobFinished(UserError):
    """The job cannot be cancelled: it has already finished."""


@dataclass(frozen=True)
class ResumePlan:
    job_id: str
    queue: str
    seqs: list[int]  # the documents re-enqueued
    tasks: list[list[int]]


def _job(connection: Connection, job_id: str) -> Any:
    job = connection.execute(select(schema.jobs).where(schema.jobs.c.id == job_id)).first()
    if job is None:
        raise JobNotFound(f"no job {job_id!r}")
    return job


def _missing(connection: Connection, job_id: str, failed_only: bool) -> list[tuple[int, int]]:
    """(seq, n_chars) of the documents without a result: all of them that have not
    failed for good, or (failed_only) exactly those that have."""
    jd, docs = schema.job_documents, schema.documents
    query = (documents_without_result(job_id, jd.c.seq, docs.c.n_chars, failed=failed_only)
             .order_by(jd.c.seq))
    return [(row.seq, row.n_chars) for row in connection.execute(query)]


def plan_resume(engine: Engine, job_id: str, failed_only: bool = False) -> ResumePlan:
    """Find the documents to run again and mark the job queued again if any.

    failed_only: only the documents recorded as failed, whose attempts start over.
    """
    with engine.begin() as connection:
        job = _job(connection, job_id)
        missing = _missing(connection, job_id, failed_only)
        seqs = [seq for seq, _ in missing]
        if failed_only and seqs:
            connection.execute(delete(schema.document_failures).where(
                schema.document_failures.c.job_id == job_id,
                schema.document_failures.c.seq.in_(seqs)))
        if seqs:
            connection.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(
                status="queued", error=None, finished_at=None))
    planner = TaskPlanner(int(job.settings.get("task_tokens", 16384)))
    for seq, n_chars in missing:
        planner.add(seq, estimate_tokens(n_chars))
    return ResumePlan(job_id, str(job.settings.get("queue", "cpu")), seqs, planner.tasks)


def cancel_job(engine: Engine, job_id: str) -> None:
    """Mark the job cancelled; workers then drop its tasks without evaluating them."""
    with engine.begin() as connection:
        job = _job(connection, job_id)
        if job.status in FINISHED:
            raise JobFinished(f"job {job_id} is already {job.status}")
        connection.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(
            status="cancelled", finished_at=datetime.now().astimezone()))


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


def _age(stamp: datetime) -> float:
    if stamp.tzinfo is None:  # SQLite returns naive timestamps; they were written in UTC
        stamp = stamp.replace(tzinfo=UTC)
    return (datetime.now(UTC) - stamp).total_seconds()


def worker_rows(engine: Engine) -> list[dict[str, Any]]:
    w = schema.workers
    with engine.connect() as connection:
        rows = connection.execute(select(w).order_by(w.c.hostname, w.c.name)).all()
    out = []
    for r in rows:
        age = _age(r.heartbeat_at)
        state = "no" if not r.online else ("lost" if age > STALE_SECONDS else "yes")
        out.append({"worker": r.name, "hostname": r.hostname, "device": r.device,
                    "queues": r.queues, "current task": r.current_task or "-",
                    "documents done": r.documents_done, "online": state,
                    "last heartbeat": f"{age:.0f}s ago"})
    return out
