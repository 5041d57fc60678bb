"""One reading of a job's progress, from the database (`status --watch`, `run`): the
job's counters (lensbatch/store/totals.py), a few rows whatever the job's size."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine

from lensbatch.planning import estimate_tokens
from lensbatch.status import FINISHED
from lensbatch.store.docstate import count_final_failures
from lensbatch.store.jobs import job_row
from lensbatch.store.totals import progress
from lensbatch.store.workers import active_workers


@dataclass(frozen=True)
class Snapshot:
    """One reading of a job's progress."""

    job_id: str
    status: str
    docs_done: int
    docs_total: int
    tokens_done: int
    tokens_total: int  # estimated from characters until the job is finished
    failed: int
    workers: int
    at: float  # time.monotonic() of the reading

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def pending_tokens(n_chars: int, n_documents: int, pending: int) -> int:
    """The tokens of `pending` of a job's `n_documents` documents (`n_chars` characters
    in all) as the planner estimates them, each taken at the job's mean length."""
    if pending <= 0 or n_documents <= 0:
        return 0
    return estimate_tokens(n_chars * pending // n_documents, pending)


def read_snapshot(engine: Engine, job_id: str) -> Snapshot:
    with engine.connect() as connection:
        job = job_row(connection, job_id)
        done, totals = progress(connection, [job_id])[job_id]
        failed = count_final_failures(connection, job_id)
    tokens = int(totals["n_tokens"])
    # The documents still to do (no result, not failed for good).
    pending = int(job.n_documents) - done - failed
    return Snapshot(
        job_id=job_id, status=job.status, docs_done=done, docs_total=int(job.n_documents),
        tokens_done=tokens,
        tokens_total=tokens + pending_tokens(int(job.n_chars), int(job.n_documents), pending),
        failed=failed, workers=active_workers(engine), at=time.monotonic(),
    )
