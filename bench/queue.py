"""Rows e, g, h: tasks through a real Redis and real `lensbatch worker` processes."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import Engine

from bench.corpus import write_jsonl
from bench.timing import median
from bench.workers import Services, peak_of, wait_done, workers
from lensbatch.jobspec import JobSpec
from lensbatch.settings import Settings
from lensbatch.store.jobs import create_job
from lensbatch.store.queries import result_writers
from scheduler.enqueue import enqueue


@dataclass(frozen=True)
class QueueJob:
    """A corpus and the job options to queue it with."""

    corpus: Path
    spec: JobSpec
    n_tokens: int


def queue_seconds(engine: Engine, services: Services, job: QueueJob, timeout: float) -> float:
    """From the first message sent to the last result committed."""
    planned = create_job(engine, str(job.corpus), job.spec)
    started = time.perf_counter()
    enqueue(Settings(broker_url=services.broker_url), planned.job_id, planned.tasks, "cpu")
    return wait_done(engine, planned.job_id, timeout) - started


def warm_up(engine: Engine, services: Services, job: QueueJob, n_workers: int) -> None:
    """Run small jobs until every worker has loaded the model (loading is not timed)."""
    for _ in range(5):
        planned = create_job(engine, str(job.corpus), job.spec)
        enqueue(Settings(broker_url=services.broker_url), planned.job_id, planned.tasks, "cpu")
        wait_done(engine, planned.job_id, 300)
        if result_writers(engine, planned.job_id) >= n_workers:
            return


def _local_seconds(engine: Engine, job: QueueJob) -> float:
    """The same tasks through process_task here, one call per queued task (as a worker
    makes them), with the worker's one thread."""
    import torch

    from worker.engine.models import load_model
    from worker.service import Runtime, process_task

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        load_model(job.spec.model, "cpu", job.spec.dtype)
        # The tasks alone: storing the job is outside both timings.
        planned = create_job(engine, str(job.corpus), job.spec)
        runtime = Runtime(device="cpu")
        started = time.perf_counter()
        for seqs in planned.tasks:
            process_task(engine, planned.job_id, seqs, runtime)
        return time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class QueueOverhead:
    n_tasks: int
    tasks_per_s: float
    local_ms_per_task: float
    overhead_ms_per_task: float


def queue_overhead(engine: Engine, services: Services, job: QueueJob, reps: int,
                   log: Path) -> QueueOverhead:
    """(e) One worker against process_task called in this process, on the same tasks."""
    n_tasks = len(create_job(engine, str(job.corpus), job.spec).tasks)
    warm = QueueJob(job.corpus.with_name("warm.jsonl"), replace(job.spec, task_tokens=1), 0)
    write_jsonl(warm.corpus, ["A short warm-up document."])
    queued, local = [], []
    with workers(services, 1, 1, log):
        warm_up(engine, services, warm, 1)
        for _ in range(reps):
            queued.append(queue_seconds(engine, services, job, 300))
            local.append(_local_seconds(engine, job))
    per_task = [q / n_tasks for q in queued]
    local_per_task = [t / n_tasks for t in local]
    overhead = [(q - t) * 1000 for q, t in zip(per_task, local_per_task, strict=True)]
    return QueueOverhead(n_tasks, 1 / median(per_task), 1000 * median(local_per_task),
                         median(overhead))


@dataclass(frozen=True)
class Scaling:
    two_processes_s: list[float]
    two_threads_s: list[float]
    peak_rss_mb: float  # the one two-thread worker, model loaded and a job done


def scaling(engine: Engine, services: Services, job: QueueJob, reps: int,
            log: Path) -> Scaling:
    """(h) Two workers with one thread each against one worker with two threads; (g) the
    single worker's peak memory."""
    warm = QueueJob(job.corpus.with_name("warm.jsonl"), replace(job.spec, task_tokens=1), 0)
    write_jsonl(warm.corpus, [f"Warm-up document number {i}." for i in range(4)])
    processes, threads = [], []
    with workers(services, 2, 1, log):
        warm_up(engine, services, warm, 2)
        for _ in range(reps):
            processes.append(queue_seconds(engine, services, job, 900))
    with workers(services, 1, 2, log) as pids:
        warm_up(engine, services, warm, 1)
        for _ in range(reps):
            threads.append(queue_seconds(engine, services, job, 900))
        peak = peak_of(pids)
    return Scaling(processes, threads, peak)
