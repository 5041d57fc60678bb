"""What a task does, as plain functions: claim ids, evaluate, write results.

Celery's task (worker/tasks.py) and `lensbatch run` both call process_task, and tests
call it directly. The database work is lensbatch/store/tasks.py's two transactions,
each retried with backoff (worker/dbretry.py); the tensor work is worker/engine's.
Documents that fail are isolated (worker/isolate.py) and their attempts counted.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from sqlalchemy import Engine

from lensbatch.errors import DeviceError, JobSpecError, ModelUnavailable
from lensbatch.jobspec import JobSpec
from lensbatch.settings import DEFAULT_CACHE_DIR
from lensbatch.store.jobs import fail_job
from lensbatch.store.tasks import Writer, Written, claim, write_task
from worker.dbretry import retry_db
from worker.engine.evaluate import analyse_texts
from worker.engine.models import load_model, model_record, resolve_hooks
from worker.engine.probe import probe_model
from worker.isolate import DocumentsFailed, evaluate_isolating

log = logging.getLogger("lensbatch.worker")


@dataclass(frozen=True)
class Runtime:
    """Where this process evaluates: its device and the name it writes into results."""

    device: str
    name: str = f"{socket.gethostname()}:{os.getpid()}"
    # Attempts per document before it is recorded as failed for good.
    max_attempts: int = 3
    cache_dir: str = DEFAULT_CACHE_DIR  # built-in models' tokenizer files


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
    claimed = retry_db(lambda: claim(engine, job_id, seqs), "reading the task")
    if claimed.job is None or claimed.dropped:
        log.info("dropping task of job %s: job is %s", job_id,
                 "unknown" if claimed.job is None else claimed.job.status)
        return NOTHING
    if not claimed.todo:
        return NOTHING
    spec = JobSpec.from_json(claimed.job.settings)
    try:
        model = load_model(spec.model, runtime.device, spec.dtype, runtime.cache_dir)
        resolve_hooks(model, spec.activations)  # a hook this model lacks fails the job
    except (ModelUnavailable, DeviceError, JobSpecError) as exc:  # e.g. bfloat16 on a CPU
        message = str(exc)
        retry_db(lambda: fail_job(engine, job_id, message), "failing the job")
        log.error("job %s failed: %s", job_id, message)
        return NOTHING
    outcome = evaluate_isolating(lambda texts: analyse_texts(model, texts, spec), claimed.todo)
    for seq, error in outcome.failed:
        log.warning("job %s document %d failed: %s", job_id, seq, error)
    probe = None if claimed.probed else probe_model(spec.model, runtime.device, spec.dtype,
                                                    runtime.cache_dir)
    written = Written(outcome, probe, spec.model,
                      model_record(spec.model, runtime.device, spec.dtype, runtime.cache_dir),
                      per_document_heads=spec.head_scores == "document")
    writer = Writer(runtime.name, runtime.max_attempts)
    retry = retry_db(lambda: write_task(engine, job_id, written, writer), "writing results")
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
