"""`lensbatch run`: the whole pipeline in one process, with no broker and no server.

The job is stored exactly as `submit` stores it, and every task goes through the same
worker.service.process_task a Celery worker calls.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from lensbatch.errors import ModelUnavailable
from lensbatch.jobspec import JobSpec
from lensbatch.models import check_loadable
from lensbatch.settings import Settings
from lensbatch.status import JobStatus
from lensbatch.store.jobs import Member, PlannedJob, create_jobs
from lensbatch.store.progress import read_snapshot
from lensbatch.store.queries import JobSummary, job_summary
from scheduler.progress import ProgressView

if TYPE_CHECKING:
    from worker.service import Runtime

DEFAULTS = Settings()


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
    settings: Settings = DEFAULTS,
) -> RunReport:
    """Evaluate every task of a new job here; `view` shows progress after each task.

    settings: the cache directory and the largest document accepted."""
    return run_jobs_local(engine, corpus, [Member(spec)], device, lambda: view, settings)[0]


def run_jobs_local(
    engine: Engine, corpus: str, members: list[Member], device: str,
    views: Callable[[], ProgressView | None] = lambda: None,
    settings: Settings = DEFAULTS,
) -> list[RunReport]:
    """Store the corpus once with one job per member (a sweep when there are several),
    then evaluate the jobs here one after the other; `views()` gives each job's
    progress view. Every model is loaded, its hooks and stride checked, before anything
    is stored."""
    for member in members:  # offline and not cached: fail before torch loads
        check_loadable(member.spec.model)
    from worker.engine.ablation import check_heads
    from worker.engine.device import pick_device
    from worker.engine.models import load_model, resolve_hooks
    from worker.service import Runtime

    runtime = Runtime(device=str(pick_device(device)), cache_dir=settings.cache_dir)
    for member in members:  # a model that cannot load, a hook it lacks, a stride too long
        model = load_model(member.spec.model, runtime.device, member.spec.dtype,
                           settings.cache_dir)
        resolve_hooks(model, member.spec.activations)
        member.spec.check_stride(int(model.cfg.n_ctx))
        check_heads(model, member.spec)
    created = create_jobs(engine, corpus, members, settings.max_document_bytes)
    reports = [_evaluate(engine, job, member.spec, runtime, views())
               for job, member in zip(created.jobs, members, strict=True)]
    failed = [r.summary for r in reports if r.summary.status == JobStatus.FAILED]
    if failed:
        raise ModelUnavailable("; ".join(s.error or f"job {s.job_id} failed" for s in failed))
    return reports


def _evaluate(engine: Engine, job: PlannedJob, spec: JobSpec, runtime: Runtime,
              view: ProgressView | None) -> RunReport:
    from worker.engine.batching import batch_budget
    from worker.engine.models import load_model
    from worker.service import process_task_settled

    load_model(spec.model, runtime.device, spec.dtype, runtime.cache_dir)  # not timed
    started = time.perf_counter()
    with view if view is not None else contextlib.nullcontext():
        if view is not None:
            view.show(read_snapshot(engine, job.job_id))
        budget = batch_budget(spec.batch_tokens, runtime.device)
        for seqs in local_chunks(job.tasks, budget, spec.task_tokens):
            process_task_settled(engine, job.job_id, seqs, runtime)
            if view is not None:
                view.show(read_snapshot(engine, job.job_id))
    return RunReport(job_summary(engine, job.job_id), time.perf_counter() - started)
