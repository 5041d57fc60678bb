"""The Celery task: thin, passes ids, retries, acknowledges late.

All logic lives in worker.service.process_task. torch is imported only when a task
first runs, in the pool process that runs it, never in the parent that forks them.
"""

from __future__ import annotations

import functools
import logging
import time

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from lensbatch.db import ensure_schema
from lensbatch.errors import DatabaseUnavailable
from lensbatch.queue import EVALUATE_TASK, make_celery
from lensbatch.settings import Settings

settings = Settings.from_env()
app = make_celery(settings)
log = logging.getLogger("lensbatch.worker")

# Database errors are retried with exponential backoff; nothing is acknowledged
# before the results are committed.
DB_ERRORS = (OperationalError, DBAPIError, DatabaseUnavailable)


@functools.lru_cache(maxsize=1)
def engine() -> Engine:
    return ensure_schema(settings.database_url)


@functools.lru_cache(maxsize=1)
def runtime():  # type: ignore[no-untyped-def]
    from worker.device import pick_device
    from worker.service import Runtime

    return Runtime(device=str(pick_device(settings.device)))


@app.task(
    name=EVALUATE_TASK,
    bind=True,
    acks_late=True,
    autoretry_for=DB_ERRORS,
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=20,
)
def evaluate(self, job_id: str, seqs: list[int]) -> int:  # type: ignore[no-untyped-def]
    from worker.service import process_task
    from worker.tasklog import task_line, task_tokens

    started = time.perf_counter()
    written = process_task(engine(), job_id, list(seqs), runtime())
    seconds = time.perf_counter() - started
    tokens = task_tokens(engine(), job_id, list(seqs))
    log.info("%s", task_line(job_id, list(seqs), written, tokens, seconds, runtime().device))
    return written
