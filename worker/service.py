"""What a task does, as plain functions: read ids, evaluate, write results.

Celery's task (worker/tasks.py) and `lensbatch run` both call process_task, and tests
call it directly. Writing is an upsert keyed on (job, document) in one transaction, so
running a task twice changes nothing. That transaction also holds the documents' head
scores, activation statistics and induction hits, and the job's induction probe the
first time one of its tasks runs (worker/rows.py).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, and_, func, select, update

from lensbatch import schema
from lensbatch.errors import JobSpecError, ModelUnavailable
from lensbatch.jobspec import JobSpec
from lensbatch.upsert import upsert
from worker.evaluate import DocMetrics, analyse_texts
from worker.models import load_model, resolve_hooks
from worker.probe import probe_model
from worker.rows import has_probe, write_probe, write_summaries

log = logging.getLogger("lensbatch.worker")

FINISHED = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class Runtime:
    """Where this process evaluates: its device and the name it writes into results."""

    device: str
    name: str = f"{socket.gethostname()}:{os.getpid()}"


def now() -> datetime:
    return datetime.now(UTC)


def pending_documents(
    connection: Connection, job_id: str, seqs: list[int]
) -> list[tuple[int, str]]:
    """(seq, text) of the given documents that have no result yet, in seq order."""
    jd, docs, res = schema.job_documents, schema.documents, schema.results
    query = (
        select(jd.c.seq, docs.c.text)
        .join(docs, docs.c.id == jd.c.document_id)
        .outerjoin(res, and_(res.c.job_id == jd.c.job_id, res.c.seq == jd.c.seq))
        .where(jd.c.job_id == job_id, jd.c.seq.in_(seqs), res.c.seq.is_(None))
        .order_by(jd.c.seq)
    )
    return [(row.seq, row.text) for row in connection.execute(query)]


def fail_job(engine: Engine, job_id: str, message: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(schema.jobs)
            .where(schema.jobs.c.id == job_id, schema.jobs.c.status.not_in(FINISHED))
            .values(status="failed", error=message, finished_at=now())
        )


def finish_if_complete(connection: Connection, job_id: str) -> None:
    """Mark the job done once every document has a result."""
    done = select(func.count()).select_from(schema.results).where(
        schema.results.c.job_id == job_id
    )
    connection.execute(
        update(schema.jobs)
        .where(
            schema.jobs.c.id == job_id,
            schema.jobs.c.status.in_(("queued", "running")),
            schema.jobs.c.n_documents <= done.scalar_subquery(),
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


def process_task(engine: Engine, job_id: str, seqs: list[int], runtime: Runtime) -> int:
    """Evaluate the job's documents `seqs` that lack results; return how many were written."""
    with engine.begin() as connection:
        job = connection.execute(
            select(schema.jobs.c.status, schema.jobs.c.settings).where(
                schema.jobs.c.id == job_id
            )
        ).first()
        if job is None or job.status in FINISHED:
            return 0  # unknown, cancelled or already failed: drop the task
        todo = pending_documents(connection, job_id, seqs)
        if not todo:
            finish_if_complete(connection, job_id)
            return 0
        probed = has_probe(connection, job_id)
        connection.execute(
            update(schema.jobs)
            .where(schema.jobs.c.id == job_id, schema.jobs.c.status == "queued")
            .values(status="running", started_at=now())
        )
    spec = JobSpec.from_json(job.settings)
    try:
        model = load_model(spec.model, runtime.device, spec.dtype)
        resolve_hooks(model, spec.activations)  # a hook this model lacks fails the job
    except (ModelUnavailable, JobSpecError) as exc:
        fail_job(engine, job_id, str(exc))
        log.error("job %s failed: %s", job_id, exc)
        return 0
    todo_seqs = [seq for seq, _ in todo]
    evaluations = analyse_texts(model, [text for _, text in todo], spec)
    metrics = [evaluation.metrics for evaluation in evaluations]
    probe = None if probed else probe_model(spec.model, runtime.device, spec.dtype)
    with engine.begin() as connection:
        upsert(connection, schema.results, result_rows(job_id, todo_seqs, metrics, runtime.name),
               keys=("job_id", "seq"))
        write_summaries(connection, job_id, todo_seqs, evaluations,
                        lambda token: str(model.tokenizer.decode([token])))
        if probe is not None:
            write_probe(connection, job_id, spec.model, probe)
        finish_if_complete(connection, job_id)
    return len(todo_seqs)
