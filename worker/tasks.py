"""The Celery task: thin, passes ids, retries, acknowledges late.

All logic lives in worker.service.process_task. torch is imported only when a task
first runs, in the pool process that runs it, never in the parent that forks them.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from lensbatch.db import ensure_schema
from lensbatch.errors import DatabaseUnavailable
from lensbatch.queue import EVALUATE_TASK, make_celery
from lensbatch.settings import Settings
from worker import registry
from worker.failures import DocumentsFailed

settings = Settings.from_env()
app = make_celery(settings)
log = logging.getLogger("lensbatch.worker")

# Database errors are retried in place first (worker/dbretry.py), then by Celery with
# exponential backoff; nothing is acknowledged before the results are committed.
# DocumentsFailed: a document failed and has attempts left (worker/failures.py).
RETRIED = (OperationalError, DBAPIError, DatabaseUnavailable, DocumentsFailed)
_heartbeat: list[threading.Event] = []


@functools.lru_cache(maxsize=1)
def engine() -> Engine:
    return ensure_schema(settings.database_url)


@functools.lru_cache(maxsize=1)
def runtime():  # type: ignore[no-untyped-def]
    from worker.device import pick_device
    from worker.service import Runtime

    return Runtime(device=str(pick_device(settings.device)), max_attempts=settings.max_attempts)


@functools.lru_cache(maxsize=1)
def worker_info() -> registry.WorkerInfo:
    queues = os.environ.get("LENSBATCH_WORKER_QUEUES", "cpu")
    return registry.this_worker(runtime().device, queues)


@worker_process_init.connect
def _register(**_: Any) -> None:
    """Each pool process appears in the workers table and keeps its heartbeat fresh."""
    try:
        _heartbeat.append(registry.start_heartbeat(engine(), worker_info()))
    except Exception as exc:  # the database may be away; tasks retry it themselves
        log.warning("worker registration failed: %s", type(exc).__name__)


@worker_process_shutdown.connect
def _unregister(**_: Any) -> None:
    for stop in _heartbeat:
        stop.set()
        registry.go_offline(engine(), worker_info().name)


@app.task(
    name=EVALUATE_TASK,
    bind=True,
    acks_late=True,
    autoretry_for=RETRIED,
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=20,
)
def evaluate(self, job_id: str, seqs: list[int]) -> int:  # type: ignore[no-untyped-def]
    from worker.service import process_task
    from worker.tasklog import task_line

    started = time.perf_counter()
    name = worker_info().name
    registry.set_current_task(engine(), name, f"{job_id}:{seqs[0]}-{seqs[-1]}")
    try:
        done = process_task(engine(), job_id, list(seqs), runtime())
    except DocumentsFailed as exc:
        registry.set_current_task(engine(), name, None, exc.written)
        raise
    registry.set_current_task(engine(), name, None, done.written)
    seconds = time.perf_counter() - started
    log.info("%s", task_line(job_id, list(seqs), done, seconds, runtime().device))
    return done.written
