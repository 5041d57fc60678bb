"""Fault injection against real processes: workers, Redis and PostgreSQL are killed,
stopped and restarted by their own process ids while a job runs.

Figures (documents, results, duplicated, lost, recovery time) go to
bench-results/fault-injection.md and are printed at the end (pytest -s).
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lensbatch.store import schema
from tests.cli import lensbatch
from tests.crashes import kill_mid_task, task_seqs
from tests.faults import (
    FAULTS,
    FaultRow,
    Probe,
    Worker,
    duplicates_and_lost,
    write_corpus,
)
from tests.services import PostgresServer, RedisServer

pytestmark = pytest.mark.integration

# Short enough that a killed worker's task is back within seconds; see docs/reliability.md.
FAST_REDELIVERY = {"LENSBATCH_VISIBILITY_TIMEOUT": "4", "LENSBATCH_RESTORE_INTERVAL": "1"}
TASK_TOKENS = "1000"  # about 20 short documents, one to three seconds per task here


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    FAULTS.write()


def submit(corpus: Path, env: dict[str, str], model: str, *extra: str) -> str:
    result = lensbatch("submit", str(corpus), "--model", model, "--task-tokens", TASK_TOKENS,
                       *extra, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def record(fault: str, n: int, probe: Probe, job: str, seconds: float, note: str) -> None:
    seqs = probe.result_seqs(job)
    duplicated, lost = duplicates_and_lost(n, seqs)
    FAULTS.add(FaultRow(fault, n, len(seqs), duplicated, lost, seconds, note))


def test_sigkill_worker_mid_task(tmp_path: Path, redis: RedisServer, postgres_url: str,
                                 tiny_checkpoint: str) -> None:
    env = {"LENSBATCH_BROKER_URL": redis.url, "LENSBATCH_DATABASE_URL": postgres_url,
           **FAST_REDELIVERY}
    n = 120
    probe = Probe(postgres_url)
    lensbatch("db", "upgrade", env=env)
    w1, w2 = Worker(env, tmp_path / "w1.log"), Worker(env, tmp_path / "w2.log")
    try:
        name1, name2 = probe.pool_name(w1), probe.pool_name(w2)
        job = submit(write_corpus(tmp_path / "c.jsonl", n), env, tiny_checkpoint)
        killed = kill_mid_task(probe, name1, job, w1.kill)
        killed_at = time.monotonic()
        probe.wait(lambda: set(killed) <= set(probe.result_seqs(job)), 60, "task redelivered")
        recovery = time.monotonic() - killed_at
        probe.wait_done(job)
        by_worker = probe.results_by(job)
    finally:
        w1.kill()
        w2.stop()
    assert sorted(by_worker) == list(range(n))
    assert {by_worker[seq] for seq in killed} == {name2}, "the killed task was redone by w2"
    assert f"seqs={killed[0]}-{killed[-1]} " not in w1.text(), "w1 never finished it"
    record("worker SIGKILL mid-task (2 workers)", n, probe, job, recovery,
           "kill to killed task's results")
    probe.close()


def test_task_outliving_visibility_timeout_runs_twice_without_duplicates(
    tmp_path: Path, redis: RedisServer, postgres_url: str, tiny_checkpoint: str
) -> None:
    env = {"LENSBATCH_BROKER_URL": redis.url, "LENSBATCH_DATABASE_URL": postgres_url,
           **FAST_REDELIVERY}
    n = 60
    probe = Probe(postgres_url)
    lensbatch("db", "upgrade", env=env)
    w1 = Worker(env, tmp_path / "w1.log")
    w2: Worker | None = None
    try:
        name1 = probe.pool_name(w1)
        job = submit(write_corpus(tmp_path / "c.jsonl", n), env, tiny_checkpoint)
        probe.wait(lambda: probe.current_task(name1) is not None, 90, "worker 1 busy")
        stalled = task_seqs(str(probe.current_task(name1)))
        # current_task is set before the claim: stop the worker once it has claimed, so
        # that it evaluates and writes after SIGCONT.
        probe.wait(lambda: probe.claimed(job, stalled), 90, "worker 1 claimed its task")
        w1.signal(signal.SIGSTOP)  # the task now outlives the 4 s visibility timeout
        stopped_at = time.monotonic()
        w2 = Worker(env, tmp_path / "w2.log")
        name2 = probe.pool_name(w2)
        probe.wait_done(job)
        recovery = time.monotonic() - stopped_at
        assert {probe.results_by(job)[seq] for seq in stalled} == {name2}
        w1.signal(signal.SIGCONT)  # the first run finishes too, and writes again
        line = f"seqs={stalled[0]}-{stalled[-1]}"
        probe.wait(lambda: line in w1.text(), 60, "stalled task finished")
        by_worker = probe.results_by(job)
        counted = probe._read(lambda c: c.scalar(  # the job's progress counter
            select(func.sum(schema.job_progress.c.documents_done))
            .where(schema.job_progress.c.job_id == job)))
    finally:
        w1.stop()
        if w2 is not None:
            w2.stop()
    assert line in w2.text(), "the task ran on both workers"
    assert sorted(by_worker) == list(range(n))
    # Results are inserted once, keyed: the later write of the same documents changes
    # nothing, so the counters that the first write added to count each document once.
    assert {by_worker[seq] for seq in stalled} == {name2}, "the second write changed rows"
    assert counted == n
    record("task outlives visibility timeout (SIGSTOP)", n, probe, job, recovery,
           "ran twice, written once")
    probe.close()


def test_broker_loss_then_resume(tmp_path: Path, redis: RedisServer, postgres_url: str,
                                 tiny_checkpoint: str) -> None:
    env = {"LENSBATCH_BROKER_URL": redis.url, "LENSBATCH_DATABASE_URL": postgres_url,
           **FAST_REDELIVERY}
    n = 120
    probe = Probe(postgres_url)
    lensbatch("db", "upgrade", env=env)
    w1 = Worker(env, tmp_path / "w1.log")
    try:
        name1 = probe.pool_name(w1)
        job = submit(write_corpus(tmp_path / "c.jsonl", n), env, tiny_checkpoint)
        probe.wait(lambda: len(probe.result_seqs(job)) > 0, 90, "first results")
        redis.kill()  # the queue lived only in memory: it is gone
        killed_at = time.monotonic()
        before = len(probe.result_seqs(job))
        status = lensbatch("status", job, env=env)
        after = len(probe.result_seqs(job))
        assert status.returncode == 0, status.stderr
        shown = int(re.search(r"(\d+) / 120", status.stdout).group(1))  # type: ignore[union-attr]
        assert before <= shown <= after
        probe.wait(lambda: probe.current_task(name1) is None, 60, "in-flight task done")
        done = len(probe.result_seqs(job))
        assert 0 < done < n
        redis.start()
        resumed = lensbatch("resume", job, env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert f"re-enqueued {n - done} documents" in resumed.stdout
        probe.wait_done(job)
        recovery = time.monotonic() - killed_at
        final = lensbatch("status", job, env=env).stdout
    finally:
        w1.stop()
    assert f"{n} / {n}" in final and "done" in final
    assert probe.result_seqs(job) == list(range(n))
    record("Redis SIGKILL, queue lost, resume", n, probe, job, recovery,
           f"resume re-enqueued {n - done}")
    probe.close()


def test_database_restart_mid_job(tmp_path: Path, redis: RedisServer,
                                  tiny_checkpoint: str) -> None:
    pg = PostgresServer(durable=True)  # an immediate stop must not lose commits
    pg.start()
    env = {"LENSBATCH_BROKER_URL": redis.url, "LENSBATCH_DATABASE_URL": pg.url,
           **FAST_REDELIVERY}
    n = 120
    probe = Probe(pg.url)
    lensbatch("db", "upgrade", env=env)
    w1 = Worker(env, tmp_path / "w1.log")
    try:
        probe.pool_name(w1)
        job = submit(write_corpus(tmp_path / "c.jsonl", n), env, tiny_checkpoint)
        probe.wait(lambda: len(probe.result_seqs(job)) > 0, 90, "first results")
        old_pid = pg.pid()
        pg.shutdown()
        down_at = time.monotonic()
        probe.wait(lambda: "database unavailable during" in w1.text(), 60, "worker retrying")
        pg.start()
        assert pg.pid() != old_pid
        probe.wait_done(job)
        recovery = time.monotonic() - down_at
        by_worker = probe.results_by(job)
    finally:
        w1.stop()
        probe.close()
    assert sorted(by_worker) == list(range(n))
    assert probe.status(job) == "done"
    record("PostgreSQL stopped and restarted", n, probe, job, recovery,
           "writes retried with backoff")
    probe.close()
    pg.stop()


def top_rows(probe: Probe, job_id: str) -> list[tuple[object, ...]]:
    """Every column of the job's top_activations rows but the job id, in key order."""
    t = schema.top_activations
    return probe._read(lambda c: [tuple(r)[1:] for r in c.execute(
        select(t).where(t.c.job_id == job_id).order_by(t.c.hook, t.c.layer, t.c.head,
                                                       t.c.neuron))])


def test_top_activations_of_a_task_run_on_two_workers_equal_a_clean_run(
    tmp_path: Path, redis: RedisServer, postgres_url: str, tiny_checkpoint: str
) -> None:
    """A task outlives the visibility timeout and runs on both workers, each merging
    under the rows' locks: the job's top activations, histograms and counts end equal,
    to the byte, to those of the same corpus run again with no fault."""
    env = {"LENSBATCH_BROKER_URL": redis.url, "LENSBATCH_DATABASE_URL": postgres_url,
           **FAST_REDELIVERY}
    n = 60
    top = ("--top-activations", "hook_embed,mlp_post", "--top-k", "8")
    probe = Probe(postgres_url)
    lensbatch("db", "upgrade", env=env)
    corpus = write_corpus(tmp_path / "c.jsonl", n)
    w1 = Worker(env, tmp_path / "w1.log")
    w2: Worker | None = None
    try:
        name1 = probe.pool_name(w1)
        job = submit(corpus, env, tiny_checkpoint, *top)
        probe.wait(lambda: probe.current_task(name1) is not None, 90, "worker 1 busy")
        stalled = task_seqs(str(probe.current_task(name1)))
        probe.wait(lambda: probe.claimed(job, stalled), 90, "worker 1 claimed its task")
        w1.signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        w2 = Worker(env, tmp_path / "w2.log")
        probe.pool_name(w2)
        probe.wait_done(job)
        recovery = time.monotonic() - stopped_at
        w1.signal(signal.SIGCONT)  # the first run writes too: it must change nothing
        line = f"seqs={stalled[0]}-{stalled[-1]}"
        probe.wait(lambda: line in w1.text(), 60, "stalled task finished")
        faulty = top_rows(probe, job)
        clean_job = submit(corpus, env, tiny_checkpoint, *top)
        probe.wait_done(clean_job)
        clean = top_rows(probe, clean_job)
    finally:
        w1.stop()
        if w2 is not None:
            w2.stop()
    assert line in w2.text(), "the task ran on both workers"
    # hook_embed: 64 neurons; mlp_post of 2 layers: 256 each.
    assert len(clean) == 64 + 2 * 256
    assert faulty == clean
    tokens = probe._read(lambda c: c.scalar(select(func.sum(schema.results.c.n_tokens))
                                            .where(schema.results.c.job_id == job)))
    assert {row[4] for row in faulty} == {tokens}  # n_positions: each position once
    record("task on two workers, --top-activations", n, probe, job, recovery,
           f"top rows equal a clean run ({len(clean)} neurons)")
    probe.close()
