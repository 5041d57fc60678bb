"""`lensbatch run`: the whole pipeline in one process, with no broker and no server.

The job is stored exactly as `submit` stores it, and every task goes through the same
worker.service.process_task a Celery worker calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from lensbatch.errors import ModelUnavailable
from lensbatch.jobspec import JobSpec
from scheduler.jobs import create_job
from scheduler.queries import JobSummary, job_summary


@dataclass(frozen=True)
class RunReport:
    summary: JobSummary
    seconds: float  # evaluation time, model loading excluded


def run_local(
    engine: Engine, corpus: str, spec: JobSpec, device: str, show_progress: bool = True
) -> RunReport:
    from worker.device import pick_device
    from worker.models import load_model, resolve_hooks
    from worker.service import Runtime, process_task

    runtime = Runtime(device=str(pick_device(device)))
    # Fail before storing anything: a model that cannot load, a hook it does not have.
    resolve_hooks(load_model(spec.model, runtime.device, spec.dtype), spec.activations)
    job = create_job(engine, corpus, spec)
    started = time.perf_counter()
    columns = (TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(),
               TextColumn("documents"), TimeElapsedColumn())
    with Progress(*columns, disable=not show_progress, transient=False) as progress:
        bar = progress.add_task("run", total=job.n_documents)
        for seqs in job.tasks:
            process_task(engine, job.job_id, seqs, runtime)
            progress.advance(bar, len(seqs))
    seconds = time.perf_counter() - started
    summary = job_summary(engine, job.job_id)
    if summary.status == "failed":
        raise ModelUnavailable(summary.error or "job failed")
    return RunReport(summary, seconds)
