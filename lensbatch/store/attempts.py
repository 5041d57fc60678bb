"""Attempts: every task that claims a document counts one, in the claim's transaction, so
that a document that kills its pool process (a native abort, the kernel's SIGKILL) is
bounded like one whose evaluation raises.

A task claims its documents together the first time (claim_together). A task that
comes back with attempts counted and no result (its process died, or a document failed
and the task is retried) claims them one at a time (claim_alone), so that the one that
takes the process down is found and its task-mates still get results. A document whose
attempts reach LENSBATCH_MAX_ATTEMPTS, the last of them alone, and that still has no
result is recorded failed for good: its last claimer died with it. How that process
died is known when the worker's parent process recorded it (workers.exit_status).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, select, update

from lensbatch.store import schema
from lensbatch.store.clock import now
from lensbatch.store.docstate import documents_without_result, finish_if_complete
from lensbatch.store.upsert import upsert

DIED_UNKNOWN = "worker process died during evaluation"


@dataclass(frozen=True)
class Claimer:
    """Who claims and writes, and how many attempts a document gets."""

    name: str  # hostname:pid, into results.worker and job_documents.claimed_by
    max_attempts: int


@dataclass(frozen=True)
class Claimed:
    """What one claim hands to the evaluation, and what it gave up on instead."""

    todo: list[tuple[int, str]]  # (seq, text), one attempt each counted
    given_up: list[tuple[int, str]] = field(default_factory=list)  # (seq, reason)


def _count(connection: Connection, job_id: str, seqs: list[int], alone_by: str | None) -> None:
    """One more attempt for each of `seqs`; claimed_by is the claimer when it is alone."""
    jd = schema.job_documents
    connection.execute(update(jd).where(jd.c.job_id == job_id, jd.c.seq.in_(seqs)).values(
        attempts=jd.c.attempts + 1, claimed_by=alone_by))


def claim_together(connection: Connection, job_id: str, seqs: list[int],
                   claimer: Claimer) -> list[tuple[int, str]]:
    """In the task's claim transaction: the texts of `seqs` still to do, each with one
    attempt counted."""
    jd, docs = schema.job_documents, schema.documents
    todo = [(row.seq, row.text) for row in connection.execute(
        documents_without_result(job_id, jd.c.seq, docs.c.text)
        .where(jd.c.seq.in_(seqs)).order_by(jd.c.seq))]
    _count(connection, job_id, [seq for seq, _ in todo],
           claimer.name if len(todo) == 1 else None)
    return todo


def death_reason(connection: Connection, name: str) -> str:
    """How the pool process `name` died, as far as its worker recorded it."""
    status = connection.scalar(select(schema.workers.c.exit_status).where(
        schema.workers.c.name == name))
    return f"worker process died: {status}" if status else DIED_UNKNOWN


def claim_alone(engine: Engine, job_id: str, seq: int, claimer: Claimer) -> Claimed:
    """Document `seq` alone, with one attempt counted; or, when it has used up its
    attempts, the last alone, without a result, recorded failed for good instead."""
    jd, docs = schema.job_documents, schema.documents
    with engine.begin() as connection:
        row = connection.execute(documents_without_result(
            job_id, jd.c.attempts, jd.c.claimed_by, docs.c.text).where(jd.c.seq == seq)).first()
        if row is None:
            return Claimed([])
        if row.attempts >= claimer.max_attempts and row.claimed_by is not None:
            reason = death_reason(connection, row.claimed_by)
            _record(connection, job_id, [(seq, reason)], {seq: row.attempts},
                    claimer.max_attempts)
            finish_if_complete(connection, job_id)
            return Claimed([], [(seq, reason)])
        _count(connection, job_id, [seq], claimer.name)
        return Claimed([(seq, row.text)])


def _record(connection: Connection, job_id: str, failed: list[tuple[int, str]],
            attempts: dict[int, int], max_attempts: int) -> None:
    """document_failures rows, final for those whose attempts are used up."""
    stamp = now()
    rows = [{"job_id": job_id, "seq": seq, "attempts": attempts[seq],
             "final": attempts[seq] >= max_attempts, "error": error, "updated_at": stamp}
            for seq, error in failed]
    upsert(connection, schema.document_failures, rows, keys=("job_id", "seq"))


def record_failures(connection: Connection, job_id: str, failed: list[tuple[int, str]],
                    max_attempts: int) -> list[int]:
    """Record the documents whose evaluation failed, with the attempts their claims
    counted; return those with attempts left."""
    if not failed:
        return []
    jd = schema.job_documents
    seqs = [seq for seq, _ in failed]
    counted = dict(connection.execute(select(jd.c.seq, jd.c.attempts).where(
        jd.c.job_id == job_id, jd.c.seq.in_(seqs))).tuples().all())
    attempts = {seq: max(counted.get(seq, 0), 1) for seq in seqs}
    _record(connection, job_id, failed, attempts, max_attempts)
    return sorted(seq for seq in seqs if attempts[seq] < max_attempts)


def reset_attempts(connection: Connection, job_id: str, seqs: list[int]) -> None:
    """Documents queued again by `resume` start their attempts over."""
    jd = schema.job_documents
    connection.execute(update(jd).where(jd.c.job_id == job_id, jd.c.seq.in_(seqs)).values(
        attempts=0, claimed_by=None))
