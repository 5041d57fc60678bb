"""Attempts counted when a task claims documents (lensbatch/store/attempts.py), on a real
SQLite database: a task that comes back claims its documents one at a time, a document
last claimed alone by a process that died is given up after the bound, with how that
process died, and its task-mates are not blamed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from lensbatch.evaluation import DocEvaluation, DocMetrics
from lensbatch.jobspec import JobSpec
from lensbatch.store import schema
from lensbatch.store.attempts import DIED_UNKNOWN, Claimer, claim_alone, record_failures
from lensbatch.store.db import ensure_schema
from lensbatch.store.jobs import create_job, plan_resume
from lensbatch.store.tasks import claim
from lensbatch.store.totals import add_to_totals
from lensbatch.store.workers import WorkerInfo, mark_gone, register, worker_rows
from tests.cli import lensbatch
from tests.jobdb import DOCS, write_corpus

A, B = Claimer("host:101", 2), Claimer("host:102", 2)


@pytest.fixture()
def job(tmp_path: Path, sqlite_url: str) -> tuple[Engine, str, list[int]]:
    engine = ensure_schema(sqlite_url)
    planned = create_job(engine, str(write_corpus(tmp_path / "c.jsonl")),
                         JobSpec(model="toy-induction", task_tokens=10_000).validate())
    (seqs,) = planned.tasks
    return engine, planned.job_id, seqs


def state_of(engine: Engine, job_id: str) -> dict[int, tuple[int, str | None]]:
    jd = schema.job_documents
    with engine.connect() as connection:
        rows = connection.execute(select(jd.c.seq, jd.c.attempts, jd.c.claimed_by).where(
            jd.c.job_id == job_id)).all()
    return {seq: (attempts, by) for seq, attempts, by in rows}


def failures(engine: Engine, job_id: str) -> list[tuple[int, int, bool, str]]:
    f = schema.document_failures
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(  # type: ignore[misc]
            select(f.c.seq, f.c.attempts, f.c.final, f.c.error).where(f.c.job_id == job_id))]


def job_status(engine: Engine, job_id: str) -> str:
    with engine.connect() as connection:
        return str(connection.scalar(select(schema.jobs.c.status).where(
            schema.jobs.c.id == job_id)))


def write_result(engine: Engine, job_id: str, seq: int) -> None:
    """A results row and the job's counters, as write_task adds them."""
    metrics = DocMetrics(n_tokens=2, n_predictions=1, nll_sum=1.0, loss=1.0, n_correct=0,
                         accuracy=0.0, induction_candidates=0, induction_hits=0,
                         induction_novel_hits=0, n_windows=1)
    with engine.begin() as connection:
        connection.execute(schema.results.insert().values(
            job_id=job_id, seq=seq, **vars(metrics), worker="w", created_at=datetime.now(UTC)))
        add_to_totals(connection, job_id, [DocEvaluation(metrics, {}, {}, [])])


def test_a_claim_counts_one_attempt_and_a_returning_task_is_seen(job) -> None:  # type: ignore[no-untyped-def]
    engine, job_id, seqs = job
    claimed = claim(engine, job_id, seqs, A)
    assert [seq for seq, _ in claimed.todo] == seqs and claimed.returning == []
    assert claimed.todo[0][1] == DOCS[0]["text"]
    assert state_of(engine, job_id) == {seq: (1, None) for seq in seqs}  # together: nobody
    write_result(engine, job_id, seqs[0])
    again = claim(engine, job_id, seqs, B)
    assert again.todo == [] and again.returning == seqs[1:]  # to claim one at a time
    assert state_of(engine, job_id)[1] == (1, None)  # nothing counted yet
    assert [seq for seq, _ in claim_alone(engine, job_id, 2, B).todo] == [2]
    assert state_of(engine, job_id)[2] == (2, B.name)  # alone: its claimer is kept


def test_a_document_that_kills_its_process_is_given_up_with_the_signal(job) -> None:  # type: ignore[no-untyped-def]
    engine, job_id, seqs = job
    claim(engine, job_id, seqs, A)  # attempt 1, together; the process dies
    for seq in seqs[:2]:  # the task comes back: one at a time
        assert claim_alone(engine, job_id, seq, B).todo
        write_result(engine, job_id, seq)
    assert [seq for seq, _ in claim_alone(engine, job_id, 2, B).todo] == [2]  # attempt 2
    register(engine, WorkerInfo(B.name, "host", "cpu", "cpu"))
    mark_gone(engine, B.name, "signal 6 (SIGABRT)")  # B died on document 2
    given_up = claim_alone(engine, job_id, 2, A)
    assert given_up.todo == [] and given_up.given_up == [
        (2, "worker process died: signal 6 (SIGABRT)")]
    assert failures(engine, job_id) == [(2, 2, True, "worker process died: signal 6 (SIGABRT)")]
    assert claim_alone(engine, job_id, 2, A).todo == []  # failed for good: not claimed
    assert job_status(engine, job_id) != "done"
    assert claim_alone(engine, job_id, 3, A).todo  # its task-mate: attempt 2 of 2, alone
    write_result(engine, job_id, 3)  # results of the others, the culprit failed: done
    assert claim(engine, job_id, seqs, A).returning == []
    assert job_status(engine, job_id) == "done"


def test_a_death_nobody_recorded_is_given_up_honestly(job) -> None:  # type: ignore[no-untyped-def]
    engine, job_id, seqs = job
    claim(engine, job_id, seqs[:1], A)  # alone from the start: a one-document task
    assert claim_alone(engine, job_id, 0, B).todo  # A's whole worker was killed: no record
    assert claim_alone(engine, job_id, 0, A).given_up == [(0, DIED_UNKNOWN)]


def test_task_mates_of_a_crash_are_not_blamed_for_it(job) -> None:  # type: ignore[no-untyped-def]
    engine, job_id, seqs = job
    once = Claimer("host:103", 1)
    claim(engine, job_id, seqs, once)  # together, and the process died
    # Attempts are used up, but nobody was alone when it died: each gets one alone.
    assert [seq for seq, _ in claim_alone(engine, job_id, 1, once).todo] == [1]
    assert claim_alone(engine, job_id, 1, once).given_up == [(1, DIED_UNKNOWN)]
    assert failures(engine, job_id) == [(1, 2, True, DIED_UNKNOWN)]


def test_failures_carry_the_claimed_attempts_and_resume_starts_over(job) -> None:  # type: ignore[no-untyped-def]
    engine, job_id, seqs = job
    claim(engine, job_id, seqs, A)
    with engine.begin() as connection:
        assert record_failures(connection, job_id, [(1, "ValueError: x")], 2) == [1]
    claim_alone(engine, job_id, 1, A)
    with engine.begin() as connection:
        assert record_failures(connection, job_id, [(1, "ValueError: y")], 2) == []
    assert failures(engine, job_id) == [(1, 2, True, "ValueError: y")]
    plan = plan_resume(engine, job_id, failed_only=True)
    assert plan.seqs == [1] and failures(engine, job_id) == []
    assert state_of(engine, job_id)[1] == (0, None)
    assert [seq for seq, _ in claim(engine, job_id, [1], A).todo] == [1]  # together again


def test_gone_and_long_silent_pool_processes(sqlite_url: str) -> None:
    engine = ensure_schema(sqlite_url)
    for name in ("h:1", "h:2", "h:3"):
        register(engine, WorkerInfo(name, "h", "cpu", "cpu"))
    mark_gone(engine, "h:2", "signal 9 (SIGKILL)")
    with engine.begin() as connection:
        connection.execute(update(schema.workers).where(schema.workers.c.name == "h:3")
                           .values(heartbeat_at=datetime.now(UTC) - timedelta(hours=1)))
    shown = {row["worker"]: row["online"] for row in worker_rows(engine)}
    assert shown == {"h:1": "yes", "h:2": "no (signal 9 (SIGKILL))"}
    everything = {row["worker"]: row["online"] for row in worker_rows(engine, everything=True)}
    assert everything == {**shown, "h:3": "lost"}
    env = {"LENSBATCH_DATABASE_URL": sqlite_url}
    listed, listed_all = lensbatch("workers", env=env), lensbatch("workers", "--all", env=env)
    assert listed.returncode == listed_all.returncode == 0, listed.stderr + listed_all.stderr
    assert "h:2" in listed.stdout and "SIGKILL" in listed.stdout and "h:3" not in listed.stdout
    assert "h:3" in listed_all.stdout
    register(engine, WorkerInfo("h:2", "h", "cpu", "cpu"))  # a pid used again: fresh row
    assert {row["worker"]: row["online"] for row in worker_rows(engine)}["h:2"] == "yes"
