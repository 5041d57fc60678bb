"""The Celery task: thin, passes ids, retries, acknowledges late.

`lensbatch worker` builds the app with create_worker(settings, ...) and runs it; all the
logic lives in worker.service.process_task. The parent process that forks the pool
imports neither torch nor transformer_lens: each pool process imports them when it
registers (worker_process_init) or runs its first task.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from lensbatch.errors import DatabaseUnavailable
from lensbatch.queue import EVALUATE_TASK, make_celery
from lensbatch.settings import Settings
from lensbatch.store.db import ensure_schema
from lensbatch.store.workers import WorkerInfo, go_offline, set_current_task
from worker.isolate import DocumentsFailed

if TYPE_CHECKING:
    from worker.service import Runtime

log = logging.getLogger("lensbatch.worker")

# Database errors are retried in place first (worker/dbretry.py), then by Celery with
# exponential backoff; nothing is acknowledged before the results are committed.
# DocumentsFailed: a document failed and has attempts left (worker/isolate.py).
RETRIED = (OperationalError, DBAPIError, DatabaseUnavailable, DocumentsFailed)


@dataclass
class PoolProcess:
    """What one pool process holds: its database engine, device and heartbeat, each
    made on first use (in the child, after the fork)."""

    settings: Settings
    queues: str  # comma-separated, as given to `lensbatch worker --queues`
    device: str  # as requested: auto, cpu, cuda, cuda:N or mps
    gpus: tuple[int, ...] = ()  # `--gpus`: the CUDA devices the pool processes share out
    _heartbeat: list[threading.Event] = field(default_factory=list)

    @cached_property
    def engine(self) -> Engine:
        return ensure_schema(self.settings.database_url)

    @cached_property
    def runtime(self) -> Runtime:
        import torch
        from celery.utils.log import current_process_index

        from worker.engine.device import pick_device, pool_device
        from worker.service import Runtime

        # Each pool process its own GPU, by its index in the pool (stable across restarts).
        device = pool_device(self.device, self.gpus, current_process_index(base=0),
                             torch.cuda.device_count() if torch.cuda.is_available() else 0)
        return Runtime(device=str(pick_device(device)),
                       max_attempts=self.settings.max_attempts,
                       cache_dir=self.settings.cache_dir)

    @cached_property
    def info(self) -> WorkerInfo:
        from worker.heartbeat import this_worker

        return this_worker(self.runtime.device, self.queues)

    def register(self, **_: Any) -> None:
        """worker_process_init: appear in the workers table and keep a heartbeat."""
        from worker.heartbeat import start_heartbeat

        try:
            self._heartbeat.append(start_heartbeat(self.engine, self.info))
        except Exception as exc:  # the database may be away; tasks retry it themselves
            log.warning("worker registration failed: %s", type(exc).__name__)

    def unregister(self, **_: Any) -> None:
        """worker_process_shutdown: stop the heartbeat and go offline."""
        for stop in self._heartbeat:
            stop.set()
            go_offline(self.engine, self.info.name)

    def evaluate(self, job_id: str, seqs: list[int]) -> int:
        from worker.service import process_task
        from worker.tasklog import task_line

        started = time.perf_counter()
        name = self.info.name
        set_current_task(self.engine, name, f"{job_id}:{seqs[0]}-{seqs[-1]}")
        try:
            done = process_task(self.engine, job_id, seqs, self.runtime)
        except DocumentsFailed as exc:
            set_current_task(self.engine, name, None, exc.written)
            raise
        set_current_task(self.engine, name, None, done.written)
        seconds = time.perf_counter() - started
        log.info("%s", task_line(job_id, seqs, done, seconds, self.runtime.device))
        return done.written


def create_worker(settings: Settings, queues: str, device: str,
                  gpus: tuple[int, ...] = ()) -> Celery:
    """The Celery app of `lensbatch worker`, with its task and pool-process signals."""
    app = make_celery(settings)
    process = PoolProcess(settings, queues, device, gpus)
    worker_process_init.connect(process.register, weak=False)
    worker_process_shutdown.connect(process.unregister, weak=False)

    @app.task(name=EVALUATE_TASK, bind=True, acks_late=True, autoretry_for=RETRIED,
              retry_backoff=1, retry_backoff_max=30, retry_jitter=True, max_retries=20)
    def evaluate(task: Any, job_id: str, seqs: list[int]) -> int:
        return process.evaluate(job_id, list(seqs))

    return app
