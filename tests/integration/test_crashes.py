"""Pool processes that die, against a real Redis, a real PostgreSQL and a real
`lensbatch worker`: a killed pool process is replaced in seconds and its task finished,
and a document that kills every process that evaluates it is recorded failed after
LENSBATCH_MAX_ATTEMPTS while its task-mates get results.

Figures go to bench-results/fault-injection.md with the other faults (pytest -s).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import lensbatch
from tests.crashes import ABORT_WORD, abort_hook_env, kill_mid_task, pid_of
from tests.faults import FAULTS, FaultRow, Probe, Worker, duplicates_and_lost, write_corpus
from tests.services import RedisServer

pytestmark = pytest.mark.integration

TASK_TOKENS = "1000"  # about 20 short documents per task


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    FAULTS.write()


def submit(corpus: Path, env: dict[str, str], model: str) -> str:
    result = lensbatch("submit", str(corpus), "--model", model, "--task-tokens", TASK_TOKENS,
                       env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def online_others(probe: Probe, gone: set[str]) -> list[str]:
    return [str(row["name"]) for row in probe.workers()
            if row["online"] and str(row["name"]) not in gone]


def test_killed_pool_process_is_replaced_and_its_task_finished(
    tmp_path: Path, redis: RedisServer, postgres_url: str, tiny_checkpoint: str
) -> None:
    env = {"LENSBATCH_BROKER_URL": redis.url, "LENSBATCH_DATABASE_URL": postgres_url}
    n = 60
    probe = Probe(postgres_url)
    lensbatch("db", "upgrade", env=env)
    worker = Worker(env, tmp_path / "w.log")
    try:
        first = probe.pool_name(worker)
        job = submit(write_corpus(tmp_path / "c.jsonl", n), env, tiny_checkpoint)
        killed = kill_mid_task(probe, first, job, lambda: os.kill(pid_of(first), signal.SIGKILL))
        killed_at = time.monotonic()
        up = probe.wait(lambda: len(online_others(probe, {first})) == 1, 30,
                        "a replacement pool process registered")
        (second,) = online_others(probe, {first})
        probe.wait(lambda: set(killed) <= set(probe.result_seqs(job)), 60,
                   "the killed task's documents written by the replacement")
        recovery = time.monotonic() - killed_at
        probe.wait_done(job)
        by_worker = probe.results_by(job)
        rows = {str(row["name"]): row for row in probe.workers()}
        shown = lensbatch("workers", env=env).stdout
    finally:
        worker.stop()
    assert worker.process.returncode == 0, "the worker itself stayed up and stopped cleanly"
    log = worker.text()
    assert "Timed out waiting for UP message" not in log
    assert sorted(by_worker) == list(range(n)), "exactly one result per document"
    assert {by_worker[seq] for seq in killed} == {second}
    assert rows[first]["online"] is False
    assert rows[first]["exit_status"] == "signal 9 (SIGKILL)"
    assert rows[first]["current_task"] == f"{job}:{killed[0]}-{killed[-1]}"
    assert rows[second]["online"] is True and rows[second]["device"] == "cpu"
    assert "SIGKILL" in shown  # `workers` tells how it exited
    seqs = probe.result_seqs(job)
    duplicated, lost = duplicates_and_lost(n, seqs)
    FAULTS.add(FaultRow("pool process SIGKILL mid-task (1 worker)", n, len(seqs), duplicated,
                        lost, recovery, f"replacement registered {up:.1f} s after the kill; "
                        "recovery: kill to killed task's results"))
    probe.close()


def test_document_that_aborts_its_process_fails_after_bounded_attempts(
    tmp_path: Path, redis: RedisServer, postgres_url: str, tiny_checkpoint: str
) -> None:
    env = {"LENSBATCH_BROKER_URL": redis.url, "LENSBATCH_DATABASE_URL": postgres_url,
           "LENSBATCH_MAX_ATTEMPTS": "2", **abort_hook_env()}
    n, culprit = 30, 7
    corpus = write_corpus(tmp_path / "c.jsonl", n)
    lines = corpus.read_text().splitlines()
    doc = json.loads(lines[culprit])
    doc["text"] += f" {ABORT_WORD} appears here."
    lines[culprit] = json.dumps(doc)
    corpus.write_text("\n".join(lines) + "\n")
    probe = Probe(postgres_url)
    lensbatch("db", "upgrade", env=env)
    worker = Worker(env, tmp_path / "w.log")
    try:
        probe.pool_name(worker)
        started = time.monotonic()
        job = submit(corpus, env, tiny_checkpoint)
        probe.wait_done(job, timeout=300)
        seconds = time.monotonic() - started
        status = lensbatch("status", job, env=env)
        failed = probe.failures(job)
        rows = probe.workers()
    finally:
        worker.stop()
    log = worker.text()
    reason = "worker process died: signal 6 (SIGABRT)"
    assert failed == [(culprit, 2, True, reason)]
    assert log.count("exited with 'signal 6 (SIGABRT)'") == 2, "one death per attempt"
    assert "Timed out waiting for UP message" not in log
    assert f"document {culprit} recorded failed: {reason}" in log
    assert status.returncode == 0, status.stderr
    assert "done" in status.stdout and f"{n - 1} / {n}" in status.stdout
    assert "1 failed documents" in status.stdout and reason in status.stdout
    assert sorted(str(r["exit_status"]) for r in rows if not r["online"]) == [
        "signal 6 (SIGABRT)"] * 2
    seqs = probe.result_seqs(job)
    assert seqs == [s for s in range(n) if s != culprit], "its task-mates got results"
    duplicated, lost = duplicates_and_lost(n, [*seqs, culprit])
    FAULTS.add(FaultRow("document aborts its pool process (SIGABRT), max attempts 2", n,
                        len(seqs), duplicated, lost, seconds,
                        "submit to done; 1 recorded failed, 2 processes died"))
    probe.close()
