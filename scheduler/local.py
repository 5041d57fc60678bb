"""`lensbatch run`: the whole pipeline in one process, with no broker and no server.

The job is stored exactly as `submit` stores it, and every task goes through the same
worker.service.process_task a Celery worker calls.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from lensbatch.errors import ModelUnavailable
from lensbatch.jobspec import JobSpec
from lensbatch.settings import DEFAULT_CACHE_DIR
from lensbatch.status import JobStatus
from lensbatch.store.jobs import create_job
from lensbatch.store.progress import read_snapshot
from lensbatch.store.queries import JobSummary, job_summary
from scheduler.progress import ProgressView


@dataclass(frozen=True)
class RunReport:
    summary: JobSummary
    seconds: float  # evaluation time, model loading excluded


def local_chunks(tasks: Sequence[list[int]], batch_tokens: int,
                 task_tokens: int) -> list[list[int]]:
    """Consecutive planned tasks joined so that each chunk holds about one forward batch.

    Tasks are sized for the queue (--task-tokens); here there is no queue, and a chunk
    smaller than a batch (a GPU run with a large --batch-tokens) would leave the device
    waiting between small batches. Each chunk is still evaluated and committed as one
    task is, so results, retries and failures behave the same.
    """
    per_chunk = max(1, batch_tokens // task_tokens)
    return [[seq for task in tasks[i:i + per_chunk] for seq in task]
            for i in range(0, len(tasks), per_chunk)]


def run_local(
    engine: Engine, corpus: str, spec: JobSpec, device: str, view: ProgressView | None = None,
    cache_dir: str = DEFAULT_CACHE_DIR,
) -> RunReport:
    """Evaluate every task of a new job here; `view` shows progress after each task."""
    from worker.engine.batching import batch_budget
    from worker.engine.device import pick_device
    from worker.engine.models import load_model, resolve_hooks
    from worker.service import Runtime, process_task_settled

    runtime = Runtime(device=str(pick_device(device)), cache_dir=cache_dir)
    # Fail before storing anything: a model that cannot load, a hook it does not have.
    resolve_hooks(load_model(spec.model, runtime.device, spec.dtype, cache_dir),
                  spec.activations)
    job = create_job(engine, corpus, spec)
    started = time.perf_counter()
    with view if view is not None else contextlib.nullcontext():
        if view is not None:
            view.show(read_snapshot(engine, job.job_id))
        budget = batch_budget(spec.batch_tokens, runtime.device)
        for seqs in local_chunks(job.tasks, budget, spec.task_tokens):
            process_task_settled(engine, job.job_id, seqs, runtime)
            if view is not None:
                view.show(read_snapshot(engine, job.job_id))
    seconds = time.perf_counter() - started
    summary = job_summary(engine, job.job_id)
    if summary.status == JobStatus.FAILED:
        raise ModelUnavailable(summary.error or "job failed")
    return RunReport(summary, seconds)
