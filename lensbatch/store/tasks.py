"""A task's two transactions: claim (what is left to do, one attempt counted per
document: lensbatch/store/attempts.py) and write (what was done).

The write transaction inserts results keyed on (job, document), skipping those that
exist, and adds the documents whose row it created to the job's counters
(lensbatch/store/totals.py): running a task twice, one after the other or at once,
changes nothing. It holds the documents' results, induction hits, activation statistics
and (when the job keeps them) per-head scores and top activations, the job's counters,
the failures with their attempt counts, and the job's probe and model card. The job's
end is checked once it has committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, update

from lensbatch.evaluation import DocEvaluation, ProbeResult
from lensbatch.status import FINISHED, JobStatus
from lensbatch.store import schema
from lensbatch.store.attempts import Claimer, claim_together, record_failures
from lensbatch.store.clock import now
from lensbatch.store.docstate import documents_without_result, finish_if_complete
from lensbatch.store.rows import has_probe, write_probe, write_summaries
from lensbatch.store.top_rows import merge_tops
from lensbatch.store.totals import add_to_totals
from lensbatch.store.upsert import INSERTS, insert_ignore
from lensbatch.top import HookTop


@dataclass(frozen=True)
class Claim:
    """What a task finds when it starts: the documents it claimed together, or, when it
    came back, the documents it must claim one at a time."""

    job: Row | None  # status and settings; None for an unknown job
    todo: list[tuple[int, str]]  # (seq, text) claimed together, one attempt each counted
    returning: list[int]  # seqs without result whose attempts were counted before
    probed: bool  # the job already has its induction probe

    @property
    def dropped(self) -> bool:
        """The job is unknown or finished: its tasks are dropped unevaluated."""
        return self.job is None or self.job.status in FINISHED


def claim(engine: Engine, job_id: str, seqs: list[int], claimer: Claimer) -> Claim:
    """Read the job and the documents of `seqs` still to do (no result, not failed for
    good); mark the job running. If none was claimed before, claim them all, counting one
    attempt each. If some were (the task came back: its process died, or a document
    failed and it is retried), claim none: the caller claims them one at a time."""
    jd = schema.job_documents
    with engine.begin() as connection:
        job = connection.execute(
            select(schema.jobs.c.status, schema.jobs.c.settings).where(
                schema.jobs.c.id == job_id
            )
        ).first()
        if job is None or job.status in FINISHED:
            return Claim(job, [], [], True)
        query = (documents_without_result(job_id, jd.c.seq, jd.c.attempts)
                 .where(jd.c.seq.in_(seqs)).order_by(jd.c.seq))
        found = [(row.seq, row.attempts) for row in connection.execute(query)]
        if not found:
            finish_if_complete(connection, job_id)
            return Claim(job, [], [], True)
        probed = has_probe(connection, job_id)
        if any(attempts for _, attempts in found):
            todo, returning = [], [seq for seq, _ in found]
        else:
            todo, returning = claim_together(connection, job_id, seqs, claimer), []
        connection.execute(
            update(schema.jobs)
            .where(schema.jobs.c.id == job_id, schema.jobs.c.status == JobStatus.QUEUED)
            .values(status=JobStatus.RUNNING, started_at=now())
        )
        return Claim(job, todo, returning, probed)


@dataclass(frozen=True)
class Outcome:
    """One attempt at a task's documents."""

    done: list[tuple[int, DocEvaluation]]  # (seq, metrics and summaries)
    failed: list[tuple[int, str]]  # (seq, error message)


@dataclass(frozen=True)
class Written:
    """What one attempt at a task writes: results, summaries and, once per job, the
    probe and the model card."""

    outcome: Outcome
    probe: ProbeResult | None  # None when the job already has its probe
    model: str
    card: dict[str, Any]  # the `models` row: source, config, weight shapes
    per_document_heads: bool = False  # the job keeps every document's head scores
    # The top activations of the job's --top-activations hooks over exactly the
    # documents `top_covers`, and the job's K.
    tops: tuple[HookTop, ...] = ()
    top_covers: frozenset[int] = frozenset()
    top_k: int = 0


class PartialWrite(RuntimeError):
    """Another writer gave some of the task's documents their results first: the top
    activations, which cover them all, cannot be merged as they are. Nothing was
    written; evaluate `seqs` (the documents still without results) again."""

    def __init__(self, job_id: str, seqs: list[int]) -> None:
        super().__init__(f"job {job_id}: documents {seqs} to evaluate again")
        self.seqs = seqs


def insert_results(connection: Connection, job_id: str,
                   done: Sequence[tuple[int, DocEvaluation]], worker: str) -> set[int]:
    """Insert the documents' results, in seq order, skipping those that exist; return
    the seqs whose row this call created."""
    if not done:
        return set()
    stamp = now()
    rows = [{"job_id": job_id, "seq": seq, **vars(evaluation.metrics), "worker": worker,
             "created_at": stamp} for seq, evaluation in sorted(done, key=lambda d: d[0])]
    insert = INSERTS[connection.dialect.name](schema.results)
    statement = (insert.on_conflict_do_nothing(index_elements=["job_id", "seq"])
                 .returning(schema.results.c.seq))
    return set(connection.scalars(statement, rows))


def write_task(engine: Engine, job_id: str, written: Written, claimer: Claimer) -> list[int]:
    """Results, summaries, counters and failures in one transaction, then the job's end;
    return the failed seqs with attempts left."""
    outcome = written.outcome
    with engine.begin() as connection:
        created = insert_results(connection, job_id, outcome.done, claimer.name)
        fresh = [(seq, evaluation) for seq, evaluation in outcome.done if seq in created]
        write_summaries(connection, job_id, fresh, written.per_document_heads)
        if written.tops and created:
            if created != written.top_covers:  # rolls the transaction back
                raise PartialWrite(job_id, sorted(created))
            merge_tops(connection, job_id, written.tops, written.top_k)
        if written.probe is not None:
            write_probe(connection, job_id, written.model, written.probe)
        # Once per model: a behaviour-only job writes no probe, but its model card all the
        # same.
        insert_ignore(connection, schema.models, [{**written.card, "created_at": now()}],
                      keys=("name",))
        retry = record_failures(connection, job_id, outcome.failed, claimer.max_attempts)
        # Last, so that the job's counter rows are locked for the shortest time.
        add_to_totals(connection, job_id, [evaluation for _, evaluation in fresh])
    # After the commit: of two tasks that finish the job at once, the later one to
    # commit sees the other's counters (on any shard).
    with engine.begin() as connection:
        finish_if_complete(connection, job_id)
    return retry
