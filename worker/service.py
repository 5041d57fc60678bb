"""What a task does, as plain functions: read ids, evaluate, write results.

Celery's task (worker/tasks.py) and `lensbatch run` both call process_task, and tests
call it directly. Writing is an upsert keyed on (job, document) in one transaction, so
running a task twice changes nothing. That transaction also holds the documents' head
scores, activation statistics and induction hits, and the job's induction probe the
first time one of its tasks runs (worker/rows.py). Database work is retried with backoff
(worker/dbretry.py); documents that fail are isolated and counted (worker/failures.py).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, select, update

from lensbatch import schema
from lensbatch.docstate import documents_without_result
from lensbatch.errors import DeviceError, JobSpecError, ModelUnavailable
from lensbatch.jobspec import JobSpec
from lensbatch.upsert import insert_ignore, upsert
from worker.dbretry import retry_db
from worker.evaluate import DocMetrics, analyse_texts
from worker.failures import (
    DocumentsFailed,
    Outcome,
    count_final_failures,
    evaluate_isolating,
    record_failures,
)
from worker.models import load_model, model_record, resolve_hooks
from worker.probe import ProbeResult, probe_model
from worker.rows import has_probe, write_probe, write_summaries

log = logging.getLogger("lensbatch.worker")

FINISHED = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class Runtime:
    """Where this process evaluates: its device and the name it writes into results."""

    device: str
    name: str = f"{socket.gethostname()}:{os.getpid()}"
    # Attempts per document before it is recorded as failed for good.
    max_attempts: int = 3


def now() -> datetime:
    return datetime.now(UTC)


def pending_documents(
    connection: Connection, job_id: str, seqs: list[int]
) -> list[tuple[int, str]]:
    """(seq, text) of the given documents with no result that have not failed for good."""
    jd, docs = schema.job_documents, schema.documents
    query = (documents_without_result(job_id, jd.c.seq, docs.c.text)
             .where(jd.c.seq.in_(seqs)).order_by(jd.c.seq))
    return [(row.seq, row.text) for row in connection.execute(query)]


def fail_job(engine: Engine, job_id: str, message: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(schema.jobs)
            .where(schema.jobs.c.id == job_id, schema.jobs.c.status.not_in(FINISHED))
            .values(status="failed", error=message, finished_at=now())
        )


def finish_if_complete(connection: Connection, job_id: str) -> None:
    """Mark the job done once every document has a result or has failed for good."""
    done = select(func.count()).select_from(schema.results).where(
        schema.results.c.job_id == job_id
    )
    finished = done.scalar_subquery() + count_final_failures(connection, job_id)
    connection.execute(
        update(schema.jobs)
        .where(
            schema.jobs.c.id == job_id,
            schema.jobs.c.status.in_(("queued", "running")),
            schema.jobs.c.n_documents <= finished,
        )
        .values(status="done", finished_at=now())
    )


def result_rows(
    job_id: str, seqs: list[int], metrics: list[DocMetrics], worker: str
) -> list[dict[str, object]]:
    stamp = now()
    return [
        {"job_id": job_id, "seq": seq, **vars(m), "worker": worker, "created_at": stamp}
        for seq, m in zip(seqs, metrics, strict=True)
    ]


@dataclass(frozen=True)
class Claim:
    """What a task finds when it starts."""

    job: Row | None  # status and settings; None for an unknown job
    todo: list[tuple[int, str]]  # (seq, text) still without a result
    probed: bool  # the job already has its induction probe


def _claim(engine: Engine, job_id: str, seqs: list[int]) -> Claim:
    """Read the job, the documents still to do and whether the job has its probe; mark
    the job running."""
    with engine.begin() as connection:
        job = connection.execute(
            select(schema.jobs.c.status, schema.jobs.c.settings).where(
                schema.jobs.c.id == job_id
            )
        ).first()
        if job is None or job.status in FINISHED:
            return Claim(job, [], True)
        todo = pending_documents(connection, job_id, seqs)
        if not todo:
            finish_if_complete(connection, job_id)
            return Claim(job, [], True)
        connection.execute(
            update(schema.jobs)
            .where(schema.jobs.c.id == job_id, schema.jobs.c.status == "queued")
            .values(status="running", started_at=now())
        )
        return Claim(job, todo, has_probe(connection, job_id))


@dataclass(frozen=True)
class Written:
    """What one attempt at a task writes: results, summaries and, once per job, the probe."""

    outcome: Outcome
    probe: ProbeResult | None  # None when the job already has its probe
    model: str
    card: dict[str, Any]  # the `models` row: source, config, weight shapes
    decode: Callable[[int], str]  # token id -> text, for the induction hit tokens


def _write(engine: Engine, job_id: str, written: Written, runtime: Runtime) -> list[int]:
    """Results, summaries and failures in one transaction; return the failed seqs with
    attempts left."""
    outcome = written.outcome
    with engine.begin() as connection:
        if outcome.done:
            seqs = [seq for seq, _ in outcome.done]
            evaluations = [evaluation for _, evaluation in outcome.done]
            metrics = [evaluation.metrics for evaluation in evaluations]
            upsert(connection, schema.results, result_rows(job_id, seqs, metrics, runtime.name),
                   keys=("job_id", "seq"))
            write_summaries(connection, job_id, seqs, evaluations, written.decode)
        if written.probe is not None:
            write_probe(connection, job_id, written.model, written.probe)
            insert_ignore(connection, schema.models, [{**written.card, "created_at": now()}],
                          keys=("name",))
        retry = record_failures(connection, job_id, outcome.failed, runtime.max_attempts)
        finish_if_complete(connection, job_id)
    return retry


@dataclass(frozen=True)
class TaskDone:
    """What one attempt at a task committed (nothing, for a task redelivered after its
    results were written)."""

    written: int  # documents
    tokens: int  # their tokens


NOTHING = TaskDone(0, 0)


def process_task(engine: Engine, job_id: str, seqs: list[int], runtime: Runtime) -> TaskDone:
    """Evaluate the job's documents `seqs` that lack results; say what was written.

    Raises DocumentsFailed when some documents failed and have attempts left (after the
    others' results are committed), so that the caller retries the task.
    """
    claim = retry_db(lambda: _claim(engine, job_id, seqs), "reading the task")
    job, todo = claim.job, claim.todo
    if job is None or job.status in FINISHED:
        log.info("dropping task of job %s: job is %s", job_id,
                 "unknown" if job is None else job.status)
        return NOTHING
    if not todo:
        return NOTHING
    spec = JobSpec.from_json(job.settings)
    try:
        model = load_model(spec.model, runtime.device, spec.dtype)
        resolve_hooks(model, spec.activations)  # a hook this model lacks fails the job
    except (ModelUnavailable, DeviceError, JobSpecError) as exc:  # e.g. bfloat16 on a CPU
        message = str(exc)
        retry_db(lambda: fail_job(engine, job_id, message), "failing the job")
        log.error("job %s failed: %s", job_id, message)
        return NOTHING
    outcome = evaluate_isolating(lambda texts: analyse_texts(model, texts, spec), todo)
    for seq, error in outcome.failed:
        log.warning("job %s document %d failed: %s", job_id, seq, error)
    probe = None if claim.probed else probe_model(spec.model, runtime.device, spec.dtype)
    written = Written(outcome, probe, spec.model,
                      model_record(spec.model, runtime.device, spec.dtype),
                      lambda token: str(model.tokenizer.decode([token])))
    retry = retry_db(lambda: _write(engine, job_id, written, runtime), "writing results")
    if retry:
        raise DocumentsFailed(job_id, retry, len(outcome.done))
    return TaskDone(len(outcome.done), sum(e.metrics.n_tokens for _, e in outcome.done))


def process_task_settled(engine: Engine, job_id: str, seqs: list[int], runtime: Runtime) -> int:
    """process_task, retried in place until no document has attempts left (for `run`)."""
    written = 0
    for _ in range(runtime.max_attempts):
        try:
            return written + process_task(engine, job_id, seqs, runtime).written
        except DocumentsFailed as exc:
            written += exc.written
    return written
