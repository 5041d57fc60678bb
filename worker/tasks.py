"""The Celery task: thin, passes ids, retries, acknowledges late.

`lensbatch worker` builds the app with create_worker(settings, ...) and runs it; all the
logic lives in worker.service.process_task. The parent process that forks the pool
imports neither torch nor transformer_lens, and a pool process's start does no work:
Celery kills a replacement pool process that is not up within 4 s. Each pool process
registers in the background (worker/heartbeat.py) under the device it was asked for,
and imports torch, resolves the device and loads models on its first task. When a pool
process exits, the parent marks its row gone with how it exited (worker/pool.py).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from lensbatch.errors import DatabaseUnavailable
from lensbatch.queue import EVALUATE_TASK, make_celery
from lensbatch.settings import Settings
from lensbatch.store.db import ensure_schema, unpooled_engine
from lensbatch.store.workers import (
    WorkerInfo,
    go_offline,
    mark_gone,
    set_current_task,
    set_device,
)
from worker.heartbeat import start_heartbeat, this_worker, worker_name
from worker.isolate import DocumentsFailed
from worker.pool import reporting_pool

if TYPE_CHECKING:
    from worker.service import Runtime

log = logging.getLogger("lensbatch.worker")

# Database errors are retried in place first (worker/dbretry.py), then by Celery with
# exponential backoff; nothing is acknowledged before the results are committed.
# DocumentsFailed: a document failed and has attempts left (worker/isolate.py).
RETRIED = (OperationalError, DBAPIError, DatabaseUnavailable, DocumentsFailed)
# How long a task waits for its pool process's first registration attempt.
REGISTRATION_WAIT_SECONDS = 10.0


@dataclass
class PoolProcess:
    """What one pool process holds: its database engine, runtime (device) and heartbeat,
    each made on first use (in the child, after the fork)."""

    settings: Settings
    queues: str  # comma-separated, as given to `lensbatch worker --queues`
    device: str  # as requested: auto, cpu, cuda, cuda:N or mps
    gpus: tuple[int, ...] = ()  # `--gpus`: the CUDA devices the pool processes share out
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _engine: Engine | None = None
    _runtime: Runtime | None = None
    _info: WorkerInfo | None = None
    _heartbeat: list[tuple[threading.Event, threading.Event]] = field(default_factory=list)

    @property
    def engine(self) -> Engine:
        with self._lock:  # the heartbeat thread and the task may both ask first
            if self._engine is None:
                self._engine = ensure_schema(self.settings.database_url)
            return self._engine

    @property
    def info(self) -> WorkerInfo:
        if self._info is None:
            self._info = this_worker(self.device, self.queues)
        return self._info

    @property
    def runtime(self) -> Runtime:
        """Imports torch and resolves the device: on the first task, never at start."""
        if self._runtime is None:
            import torch
            from celery.utils.log import current_process_index

            from worker.engine.device import pick_device, pool_device
            from worker.service import Runtime

            # Each pool process its own GPU, by its index in the pool (stable across
            # restarts).
            device = pool_device(self.device, self.gpus, current_process_index(base=0),
                                 torch.cuda.device_count() if torch.cuda.is_available() else 0)
            self._runtime = Runtime(device=str(pick_device(device)), name=self.info.name,
                                    max_attempts=self.settings.max_attempts,
                                    cache_dir=self.settings.cache_dir)
            if self._runtime.device != self.info.device:
                set_device(self.engine, self.info.name, self._runtime.device)
        return self._runtime

    def register(self, **_: Any) -> None:
        """worker_process_init: start the heartbeat thread, which registers; no more."""
        self._heartbeat.append(start_heartbeat(lambda: self.engine, self.info))

    def unregister(self, **_: Any) -> None:
        """worker_process_shutdown: stop the heartbeat and go offline."""
        for _registered, stop in self._heartbeat:
            stop.set()
            go_offline(self.engine, self.info.name)

    def evaluate(self, job_id: str, seqs: list[int]) -> int:
        from worker.service import process_task
        from worker.tasklog import task_line

        started = time.perf_counter()
        for registered, _stop in self._heartbeat:  # so that current_task lands on the row
            registered.wait(REGISTRATION_WAIT_SECONDS)
        runtime, name = self.runtime, self.info.name
        set_current_task(self.engine, name, f"{job_id}:{seqs[0]}-{seqs[-1]}")
        try:
            done = process_task(self.engine, job_id, seqs, runtime)
        except DocumentsFailed as exc:
            set_current_task(self.engine, name, None, exc.written)
            raise
        set_current_task(self.engine, name, None, done.written)
        seconds = time.perf_counter() - started
        log.info("%s", task_line(job_id, seqs, done, seconds, runtime.device))
        return done.written


@dataclass(frozen=True)
class ExitRecorder:
    """In the worker's parent: marks an exited pool process's row gone. Its engine keeps
    no connection open, so the pool processes it forks afterwards share none."""

    database_url: str

    def __call__(self, pid: int, status: str) -> None:
        name = worker_name(pid)
        log.info("pool process %s exited: %s", name, status)
        try:
            engine = unpooled_engine(self.database_url)
        except DatabaseUnavailable as exc:  # never take the parent down
            log.warning("cannot mark %s gone: %s", name, exc)
            return
        mark_gone(engine, name, status)
        engine.dispose()


def create_worker(settings: Settings, queues: str, device: str,
                  gpus: tuple[int, ...] = ()) -> Celery:
    """The Celery app of `lensbatch worker`, with its task and pool-process signals."""
    app = make_celery(settings)
    app.conf.worker_pool = reporting_pool(ExitRecorder(settings.database_url))
    process = PoolProcess(settings, queues, device, gpus)
    worker_process_init.connect(process.register, weak=False)
    worker_process_shutdown.connect(process.unregister, weak=False)

    @app.task(name=EVALUATE_TASK, bind=True, acks_late=True, autoretry_for=RETRIED,
              retry_backoff=1, retry_backoff_max=30, retry_jitter=True, max_retries=20)
    def evaluate(task: Any, job_id: str, seqs: list[int]) -> int:
        return process.evaluate(job_id, list(seqs))

    return app
