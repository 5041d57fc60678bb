"""One reading of a job's progress, counted from the database (`status --watch`, `run`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from lensbatch.planning import estimate_tokens
from lensbatch.status import FINISHED
from lensbatch.store import schema
from lensbatch.store.docstate import count_final_failures, documents_without_result
from lensbatch.store.jobs import job_row
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


def read_snapshot(engine: Engine, job_id: str) -> Snapshot:
    r, docs = schema.results, schema.documents
    with engine.connect() as connection:
        job = job_row(connection, job_id)
        done, tokens = connection.execute(
            select(func.count(), func.coalesce(func.sum(r.c.n_tokens), 0))
            .where(r.c.job_id == job_id)
        ).one()
        # The documents still to do (no result, not failed for good), in tokens as the
        # planner estimates them.
        pending_docs, pending_chars = connection.execute(documents_without_result(
            job_id, func.count(), func.coalesce(func.sum(docs.c.n_chars), 0))).one()
        failed = count_final_failures(connection, job_id)
    estimate = estimate_tokens(int(pending_chars or 0), int(pending_docs))
    return Snapshot(
        job_id=job_id, status=job.status, docs_done=int(done), docs_total=int(job.n_documents),
        tokens_done=int(tokens), tokens_total=int(tokens) + estimate,
        failed=failed, workers=active_workers(engine), at=time.monotonic(),
    )
