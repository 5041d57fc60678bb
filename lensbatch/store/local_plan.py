"""A local run's tasks (`lensbatch run`, `run --resume`): the job's documents still to
do, planned for one process rather than for a queue, and a stopped job opened again.

A queue wants tasks of --task-tokens (16,384 by default), so that a message carries
enough work; one process has no messages to save, and a small corpus planned that way
would be one task, its progress still for minutes and then done at once. A local run
plans about LOCAL_TASKS tasks instead (lensbatch/planning.py), each still evaluated and
committed as a queued task is.

The documents are read in corpus order, PLAN_ROWS at a time, and each block is cut into
tasks longest first: a task holds documents of about one length, so the forward
batches made inside it are full rather than padded (on a CPU, `lensbatch run
--windows disjoint` over 60 documents of 10 to 1,000 tokens took 12.9 s planned so
against 13.7 s in corpus order). Each task lists its seqs in corpus order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

from sqlalchemy import Connection, Engine, func, update

from lensbatch.jobspec import JobSpec
from lensbatch.planning import TaskPlanner, estimate_tokens, local_task_tokens
from lensbatch.status import JobStatus
from lensbatch.store import schema
from lensbatch.store.docstate import documents_without_result, finish_if_complete
from lensbatch.store.jobs import job_row

PLAN_ROWS = 10_000  # rows read at a time while planning


@dataclass(frozen=True)
class LocalPlan:
    tasks: list[list[int]]  # document seqs per task, ascending
    n_documents: int  # the documents still to do
    task_tokens: int  # the estimated tokens each task was planned to


def _pending(connection: Connection, job_id: str) -> tuple[int, int]:
    """How many of the job's documents are still to do, and their characters."""
    count, chars = connection.execute(documents_without_result(
        job_id, func.count(), func.coalesce(func.sum(schema.documents.c.n_chars), 0))).one()
    return int(count), int(chars)


def pending_documents(engine: Engine, job_id: str) -> int:
    """How many of the job's documents have no result and have not failed for good."""
    with engine.connect() as connection:
        job_row(connection, job_id)
        return _pending(connection, job_id)[0]


def stored_spec(engine: Engine, job_id: str) -> JobSpec:
    """The options the job was stored with; JobNotFound for a wrong id."""
    with engine.connect() as connection:
        return JobSpec.from_json(job_row(connection, job_id).settings)


def plan_pending(engine: Engine, job_id: str, floor: int, ceiling: int) -> LocalPlan:
    """The job's documents without a result (and not failed for good), in tasks of
    local_task_tokens(their estimated tokens, floor, ceiling)."""
    jd, docs = schema.job_documents, schema.documents
    with engine.connect() as connection:
        job_row(connection, job_id)
        count, chars = _pending(connection, job_id)
        budget = local_task_tokens(estimate_tokens(chars, count), floor, ceiling)
        rows = connection.execution_options(stream_results=True, yield_per=PLAN_ROWS).execute(
            documents_without_result(job_id, jd.c.seq, docs.c.n_chars).order_by(jd.c.seq))
        tasks = length_sorted_tasks(rows.tuples(), budget)
    return LocalPlan(tasks, count, budget)


def length_sorted_tasks(rows: Iterable[tuple[int, int]], budget: int,
                        block: int = PLAN_ROWS) -> list[list[int]]:
    """(seq, n_chars) rows in corpus order cut into tasks of about `budget` estimated
    tokens by the queue's TaskPlanner, `block` rows at a time, longest document first
    within each block; each task's seqs ascending."""
    planner = TaskPlanner(budget)
    it = iter(rows)
    while chunk := list(islice(it, block)):
        for seq, n_chars in sorted(chunk, key=lambda row: (-row[1], row[0])):
            planner.add(seq, n_chars)
    return [sorted(task) for task in planner.tasks]


def record_task_count(engine: Engine, job_id: str, n_tasks: int) -> None:
    """A new job run here: its jobs row counts the tasks it is run in."""
    with engine.begin() as connection:
        connection.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(
            n_tasks=n_tasks))


def reopen_job(engine: Engine, job_id: str) -> JobSpec:
    """Open a stopped job (interrupted, its broker lost, failed or cancelled) for a local
    run over its documents without a result; return its options.

    Those documents start their attempts over (an interrupted run counted one for the
    documents it was evaluating) and the job is queued again; a job with none left is
    marked done if it is not already finished. One transaction; JobNotFound for a
    wrong id.
    """
    jd = schema.job_documents
    with engine.begin() as connection:
        job = job_row(connection, job_id)
        # correlate(None): the subquery reads job_documents on its own, not the row updated
        pending = documents_without_result(job_id, jd.c.seq).correlate(None)
        reopened = connection.execute(update(jd).where(
            jd.c.job_id == job_id, jd.c.seq.in_(pending)).values(
            attempts=0, claimed_by=None)).rowcount
        if reopened:
            connection.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(
                status=JobStatus.QUEUED, error=None, finished_at=None))
        else:
            finish_if_complete(connection, job_id)
    return JobSpec.from_json(job.settings)
