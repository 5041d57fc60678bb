"""`lensbatch run`: the whole pipeline in one process, with no broker and no server;
`run --resume` continues a job stopped part-way (Ctrl-C, a lost broker).

The job is stored exactly as `submit` stores it, and every task goes through the same
worker.service.process_task a Celery worker calls: a result is written once, whichever
run writes it, so continuing a job never duplicates one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lensbatch.errors import ModelUnavailable
from lensbatch.jobspec import JobSpec
from lensbatch.models import check_loadable
from lensbatch.settings import Settings
from lensbatch.status import FINISHED, JobStatus
from lensbatch.store.jobs import Member, create_jobs
from lensbatch.store.local_plan import (
    pending_documents,
    plan_pending,
    record_task_count,
    reopen_job,
    stored_spec,
)
from lensbatch.store.progress import read_snapshot
from lensbatch.store.queries import JobSummary, job_summary
from scheduler.progress import ProgressView

if TYPE_CHECKING:
    from worker.service import Runtime

DEFAULTS = Settings()


@dataclass(frozen=True)
class RunReport:
    summary: JobSummary
    seconds: float  # evaluation time, model loading excluded; 0 for a continued job


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
    is stored. Interrupted (Ctrl-C) names the command that continues."""
    runtime = _prepared([member.spec for member in members], device, settings)
    created = create_jobs(engine, corpus, members, settings.max_document_bytes)
    job_ids = [job.job_id for job in created.jobs]
    with _interruptible(engine, created.sweep_id or job_ids[0]):
        reports = [_evaluate(engine, job.job_id, member.spec, runtime, views(), fresh=True)
                   for job, member in zip(created.jobs, members, strict=True)]
    return _checked(reports)


def resume_jobs_local(
    engine: Engine, job_ids: list[str], device: str,
    views: Callable[[], ProgressView | None] = lambda: None,
    settings: Settings = DEFAULTS, resume_id: str = "",
) -> list[RunReport]:
    """Continue stored jobs here (`run --resume`): each job's documents without a result
    are evaluated with its stored options, and the job is finished. The models of the
    jobs with documents left are loaded and checked before any job is touched.
    resume_id: what `run --resume` was given (a job or a sweep), for Interrupted."""
    todo = [job_id for job_id in job_ids if pending_documents(engine, job_id)]
    runtime = _prepared([stored_spec(engine, job_id) for job_id in todo], device, settings)
    reports = []
    with _interruptible(engine, resume_id or job_ids[0]):
        for job_id in job_ids:
            spec = reopen_job(engine, job_id)
            reports.append(_evaluate(engine, job_id, spec, runtime, views())
                           if job_id in todo else RunReport(job_summary(engine, job_id), 0.0))
    return _checked(reports)


class Interrupted(Exception):
    """A local run stopped by Ctrl-C: every result written is kept, and nothing is
    recorded as failed; `command` continues it."""

    def __init__(self, resume_id: str, summary: JobSummary) -> None:
        self.resume_id, self.summary = resume_id, summary
        super().__init__(self.line("lensbatch"))

    def line(self, program: str) -> str:
        """The message, its command starting with `program` (and any --db) as given."""
        return (f"interrupted: job {self.summary.job_id} has results for "
                f"{self.summary.n_done} of {self.summary.n_documents} documents, all "
                f"kept; continue with: {program} run --resume {self.resume_id}")


@contextlib.contextmanager
def _interruptible(engine: Engine, resume_id: str) -> Iterator[None]:
    """Ctrl-C inside becomes Interrupted, naming the job it stopped in. A task's
    transaction that Ctrl-C stops rolls back; its documents' counted attempts start
    over when the job is continued (reopen_job)."""
    try:
        yield
    except (KeyboardInterrupt, SQLAlchemyError) as exc:
        if not _by_ctrl_c(exc):
            raise
        # Ctrl-C inside a statement leaves its connection mid-protocol (rolling it back
        # then raises a driver error in the interrupt's place): start a fresh pool.
        engine.dispose()
        raise Interrupted(resume_id, job_summary(engine, _last_active(engine, resume_id))
                          ) from None


def _by_ctrl_c(exc: BaseException | None) -> bool:
    """Whether `exc` is Ctrl-C, or an error raised while handling it."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__context__
    return False


def _last_active(engine: Engine, resume_id: str) -> str:
    """The job an interrupted run was in: the first unfinished job of the sweep (or the
    job itself)."""
    from lensbatch.store.sweeps import sweep_jobs

    for member in sweep_jobs(engine, resume_id):
        if job_summary(engine, member.job_id).status not in FINISHED:
            return member.job_id
    return resume_id


def _prepared(specs: list[JobSpec], device: str, settings: Settings) -> Runtime:
    """The runtime of a local run, once every model of `specs` has loaded here with its
    hooks and stride checked (a model offline and not cached fails before torch loads)."""
    for spec in specs:
        check_loadable(spec.model)
    from worker.engine.ablation import check_heads
    from worker.engine.device import pick_device
    from worker.engine.models import load_model, resolve_hooks
    from worker.service import Runtime

    runtime = Runtime(device=str(pick_device(device)), cache_dir=settings.cache_dir)
    for spec in specs:  # a model that cannot load, a hook it lacks, a stride too long
        model = load_model(spec.model, runtime.device, spec.dtype, settings.cache_dir)
        resolve_hooks(model, spec.activations)
        spec.check_stride(int(model.cfg.n_ctx))
        check_heads(model, spec)
    return runtime


def _checked(reports: list[RunReport]) -> list[RunReport]:
    failed = [r.summary for r in reports if r.summary.status == JobStatus.FAILED]
    if failed:
        raise ModelUnavailable("; ".join(s.error or f"job {s.job_id} failed" for s in failed))
    return reports


def _evaluate(engine: Engine, job_id: str, spec: JobSpec, runtime: Runtime,
              view: ProgressView | None, fresh: bool = False) -> RunReport:
    """Evaluate the job's documents without a result, in tasks sized for this process
    (lensbatch/store/local_plan.py); a `fresh` job records how many and is timed."""
    from worker.engine.batching import batch_budget
    from worker.engine.models import load_model
    from worker.service import process_task_settled

    load_model(spec.model, runtime.device, spec.dtype, runtime.cache_dir)  # not timed
    budget = batch_budget(spec.batch_tokens, runtime.device)
    plan = plan_pending(engine, job_id, floor=budget, ceiling=spec.task_tokens)
    chunks = local_chunks(plan.tasks, budget, plan.task_tokens)
    if fresh:
        record_task_count(engine, job_id, len(chunks))
    started = time.perf_counter()
    with view if view is not None else contextlib.nullcontext():
        if view is not None:
            view.show(read_snapshot(engine, job_id))
        for seqs in chunks:
            process_task_settled(engine, job_id, seqs, runtime)
            if view is not None:
                view.show(read_snapshot(engine, job_id))
    # A continued job's rate would count the tokens of the run before: none is given.
    return RunReport(job_summary(engine, job_id), time.perf_counter() - started if fresh else 0.0)
