"""A local run's tasks: about twenty per job, at least one forward batch and at most
--task-tokens each, over the documents still to do; a stopped job opened again."""

from __future__ import annotations

import io
from pathlib import Path

from sqlalchemy import Engine, select, update

from lensbatch.jobspec import JobSpec
from lensbatch.planning import LOCAL_TASKS, estimate_tokens, local_task_tokens
from lensbatch.store import schema
from lensbatch.store.clock import now
from lensbatch.store.db import ensure_schema
from lensbatch.store.jobs import create_job
from lensbatch.store.local_plan import (
    length_sorted_tasks,
    pending_documents,
    plan_pending,
    reopen_job,
)
from scheduler.progress import LOCAL_RUNNER, ProgressView
from tests.jobdb import repeated_corpus

SAMPLE = str(Path(__file__).resolve().parents[2] / "corpus" / "sample.jsonl")
CPU_BATCH = 1024


def test_local_task_tokens_is_a_twentieth_between_floor_and_ceiling() -> None:
    assert local_task_tokens(100_000, CPU_BATCH, 16_384) == 100_000 // LOCAL_TASKS
    assert local_task_tokens(11_663, CPU_BATCH, 16_384) == CPU_BATCH  # a batch at least
    assert local_task_tokens(10_000_000, CPU_BATCH, 16_384) == 16_384  # never above
    assert local_task_tokens(100_000, CPU_BATCH, 300) == 300  # --task-tokens below a batch
    assert local_task_tokens(0, CPU_BATCH, 16_384) == CPU_BATCH


def test_tasks_hold_documents_of_about_one_length_block_by_block() -> None:
    # corpus order alternates long (4,000 chars: 1,001 estimated tokens) and short (40: 11)
    rows = [(seq, 4_000 if seq % 2 else 40) for seq in range(40)]
    tasks = length_sorted_tasks(rows, budget=2_100, block=20)
    assert sorted(seq for task in tasks for seq in task) == list(range(40))  # each once
    assert all(task == sorted(task) for task in tasks)
    # long and short together only where the lengths change: once a block, or where
    # one block's last task meets the next one's first
    mixed = [task for task in tasks if len({seq % 2 for seq in task}) == 2]
    assert 1 <= len(mixed) <= 3
    block_of = [{seq // 20 for seq in task} for task in tasks]
    assert block_of[0] == {0} and block_of[-1] == {1}  # a block's documents first
    # within the budget unless one document is over it
    assert all(len(t) == 1 or sum(estimate_tokens(r[1]) for r in rows if r[0] in t) <= 2_100
               for t in tasks)
    assert tasks[0] == [1, 3]  # longest first, in corpus order inside the task


def stored(tmp_path: Path, corpus: str) -> tuple[Engine, str]:
    engine = ensure_schema(f"sqlite:///{tmp_path / 'lensbatch.db'}")
    return engine, create_job(engine, corpus, JobSpec(model="toy-induction")).job_id


def test_the_sample_corpus_is_planned_in_a_dozen_tasks_or_more(tmp_path: Path) -> None:
    engine, job_id = stored(tmp_path, SAMPLE)
    queued = create_job(engine, SAMPLE, JobSpec(model="toy-induction"))
    assert len(queued.tasks) == 1  # what the queue's 16,384-token tasks make of it
    plan = plan_pending(engine, job_id, floor=CPU_BATCH, ceiling=16_384)
    assert plan.n_documents == 36 and plan.task_tokens == CPU_BATCH
    assert 12 <= len(plan.tasks) <= 2 * LOCAL_TASKS
    assert sorted(seq for task in plan.tasks for seq in task) == list(range(36))
    assert all(task == sorted(task) for task in plan.tasks)
    with engine.connect() as connection:
        chars = dict(connection.execute(
            select(schema.job_documents.c.seq, schema.documents.c.n_chars)
            .join(schema.documents, schema.documents.c.id == schema.job_documents.c.document_id)
            .where(schema.job_documents.c.job_id == job_id)).tuples().all())
    for task in plan.tasks:  # over the budget only when one document is
        assert len(task) == 1 or sum(estimate_tokens(chars[s]) for s in task) <= CPU_BATCH


def fail_for_good(engine: Engine, job_id: str, seqs: list[int]) -> None:
    with engine.begin() as connection:
        connection.execute(schema.document_failures.insert(), [
            {"job_id": job_id, "seq": seq, "attempts": 3, "final": True, "error": "x",
             "updated_at": now()} for seq in seqs])


def test_plan_and_reopen_leave_out_documents_failed_for_good(tmp_path: Path) -> None:
    engine, job_id = stored(tmp_path, str(repeated_corpus(tmp_path / "c.jsonl", 12)))
    fail_for_good(engine, job_id, [0, 5])
    jd = schema.job_documents
    with engine.begin() as connection:  # an interrupted claim counted an attempt
        connection.execute(update(jd).where(jd.c.job_id == job_id, jd.c.seq.in_([3, 5]))
                           .values(attempts=1, claimed_by="gone:1"))
        connection.execute(update(schema.jobs).where(schema.jobs.c.id == job_id)
                           .values(status="running"))
    plan = plan_pending(engine, job_id, floor=1, ceiling=16_384)
    assert sorted(seq for task in plan.tasks for seq in task) == [
        s for s in range(12) if s not in (0, 5)]
    assert pending_documents(engine, job_id) == plan.n_documents == 10
    assert reopen_job(engine, job_id).model == "toy-induction"
    with engine.connect() as connection:
        attempts = dict(connection.execute(select(jd.c.seq, jd.c.attempts).where(
            jd.c.job_id == job_id)).tuples().all())
        status = connection.scalar(select(schema.jobs.c.status).where(
            schema.jobs.c.id == job_id))
    assert attempts[3] == 0 and attempts[5] == 1  # the failed one is left as it is
    assert status == "queued"
    fail_for_good(engine, job_id, [s for s in range(12) if s not in (0, 5)])
    reopen_job(engine, job_id)  # nothing left: the job is finished
    with engine.connect() as connection:
        assert connection.scalar(select(schema.jobs.c.status).where(
            schema.jobs.c.id == job_id)) == "done"


def test_a_local_run_shows_progress_after_each_of_its_tasks(tmp_path: Path,
                                                            tiny_checkpoint: str) -> None:
    from scheduler.local import run_local

    engine = ensure_schema(f"sqlite:///{tmp_path / 'lensbatch.db'}")
    out = io.StringIO()
    spec = JobSpec(model=tiny_checkpoint, batch_tokens=64).validate()
    report = run_local(engine, str(repeated_corpus(tmp_path / "c.jsonl", 12)), spec, "cpu",
                       ProgressView(out, terminal=False, runner=LOCAL_RUNNER))
    assert report.summary.n_done == 12
    with engine.connect() as connection:
        n_tasks = connection.scalar(select(schema.jobs.c.n_tasks))
    lines = out.getvalue().splitlines()
    assert n_tasks is not None and n_tasks >= 5
    assert len(lines) == n_tasks + 1  # before the first task, then after each
    assert all(line.endswith("failed=0 runner=local-process") for line in lines)
    done = [int(line.split("documents=")[1].split("/")[0]) for line in lines]
    assert done == sorted(done) and done[0] == 0 and done[-1] == 12 and len(set(done)) >= 5
