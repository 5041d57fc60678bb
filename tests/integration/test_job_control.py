"""Poison input, cancel, horizontal scaling with device queues, and security, against a
real Redis, a real PostgreSQL and real `lensbatch worker` processes."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue
from sqlalchemy import select

from lensbatch.store import schema
from tests.cli import lensbatch
from tests.faults import (
    FAULTS,
    POISON_WORD,
    FaultRow,
    Probe,
    Worker,
    duplicates_and_lost,
    make_poisoned_checkpoint,
    write_corpus,
)
from tests.services import RedisServer

pytestmark = pytest.mark.integration

TASK_TOKENS = "1000"


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    FAULTS.write()


@pytest.fixture(scope="module")
def poisoned_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_poisoned_checkpoint(tmp_path_factory.mktemp("poisoned-gpt2"))


def submit(corpus: Path, env: dict[str, str], model: str, *extra: str) -> str:
    result = lensbatch("submit", str(corpus), "--model", model, "--task-tokens", TASK_TOKENS,
                       *extra, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_poison_document_fails_after_bounded_attempts(
    tmp_path: Path, redis: RedisServer, postgres_url: str, poisoned_checkpoint: str
) -> None:
    env = {"LENSBATCH_BROKER_URL": redis.url, "LENSBATCH_DATABASE_URL": postgres_url,
           "LENSBATCH_MAX_ATTEMPTS": "2"}
    corpus = write_corpus(tmp_path / "c.jsonl", 30)
    lines = corpus.read_text().splitlines()
    poisoned = json.loads(lines[7])
    poisoned["text"] += f" A{POISON_WORD} appears."
    lines[7] = json.dumps(poisoned)
    corpus.write_text("\n".join(lines) + "\n")
    probe = Probe(postgres_url)
    lensbatch("db", "upgrade", env=env)
    w1 = Worker(env, tmp_path / "w1.log")
    try:
        job = submit(corpus, env, poisoned_checkpoint)
        seconds = probe.wait_done(job, timeout=180)
        status = lensbatch("status", job, env=env)
        first = probe.failures(job)
        assert "re-enqueued 0 documents" in lensbatch("resume", job, env=env).stdout
        again = lensbatch("resume", job, "--failed", env=env)
        assert again.returncode == 0, again.stderr
        probe.wait(lambda: "seqs=7-7" in w1.text(), 60, "failed document retried alone")
        probe.wait_done(job)
        second = probe.failures(job)
    finally:
        w1.stop()
    assert status.returncode == 0, status.stderr
    assert "done" in status.stdout and "29 / 30" in status.stdout
    assert "1 failed documents" in status.stdout and "d7" in status.stdout
    assert "non-finite loss" in status.stdout
    assert first == second == [(7, 2, True, "NonFiniteMetrics: non-finite loss (nll_sum=nan)")]
    assert "re-enqueued 1 failed documents" in again.stdout
    assert w1.text().count("document 7 failed") == 4  # two attempts, twice
    seqs = probe.result_seqs(job)
    assert seqs == [s for s in range(30) if s != 7]
    duplicated, lost = duplicates_and_lost(30, [*seqs, 7])
    FAULTS.add(FaultRow("poison document (NaN loss), max attempts 2", 30, len(seqs),
                        duplicated, lost, seconds, "submit to done; 1 recorded failed"))
    probe.close()


def test_cancel_drops_remaining_tasks(tmp_path: Path, redis: RedisServer, postgres_url: str,
                                      tiny_checkpoint: str) -> None:
    import redis as redis_client

    env = {"LENSBATCH_BROKER_URL": redis.url, "LENSBATCH_DATABASE_URL": postgres_url}
    n = 200
    probe = Probe(postgres_url)
    lensbatch("db", "upgrade", env=env)
    w1 = Worker(env, tmp_path / "w1.log")
    queue = redis_client.Redis.from_url(redis.url)
    try:
        name1 = probe.pool_name(w1)
        job = submit(write_corpus(tmp_path / "c.jsonl", n), env, tiny_checkpoint)
        probe.wait(lambda: len(probe.result_seqs(job)) > 0, 90, "first results")
        cancelled = lensbatch("cancel", job, env=env)
        cancelled_at = time.monotonic()
        assert cancelled.returncode == 0, cancelled.stderr
        probe.wait(lambda: queue.llen("cpu") == 0 and probe.current_task(name1) is None,
                   60, "queue drained")
        drained = time.monotonic() - cancelled_at
        settled = len(probe.result_seqs(job))
        # Every task message of the job is then consumed and finished (evaluated or
        # dropped): each writes one log line, after its results are committed. Nothing is
        # left that could still write results.
        n_tasks = probe.n_tasks(job)
        probe.wait(lambda: len({span for span, _ in w1.finished_tasks(job)}) == n_tasks,
                   60, f"all {n_tasks} tasks finished or dropped")
        finished = w1.finished_tasks(job)
        status = lensbatch("status", job, env=env).stdout
        again = lensbatch("cancel", job, env=env)
    finally:
        w1.stop()
        queue.close()
    assert len(probe.result_seqs(job)) == settled < n
    assert sum(written for _, written in finished) == settled  # no write after the drain
    assert "cancelled" in status
    assert w1.text().count(f"dropping task of job {job}: job is cancelled") >= 1
    assert again.returncode == 2 and "already cancelled" in again.stderr
    FAULTS.add(FaultRow("lensbatch cancel mid-job", n, settled, 0, 0, drained,
                        f"{n - settled} not evaluated (dropped)"))
    probe.close()


def result_metrics(job: str, env: dict[str, str]) -> dict[str, dict[str, object]]:
    out = lensbatch("results", job, "--format", "jsonl", env=env).stdout.splitlines()
    return {row["doc_id"]: row for row in map(json.loads, out)}


def test_two_workers_share_work_and_queues_route_by_device(
    tmp_path: Path, redis: RedisServer, postgres_url: str, sqlite_url: str,
    tiny_checkpoint: str
) -> None:
    env = {"LENSBATCH_BROKER_URL": redis.url, "LENSBATCH_DATABASE_URL": postgres_url}
    probe = Probe(postgres_url)
    lensbatch("db", "upgrade", env=env)
    corpus = write_corpus(tmp_path / "c.jsonl", 120)
    w1 = Worker(env, tmp_path / "w1.log", queues="cpu")
    w2 = Worker(env, tmp_path / "w2.log", queues="cpu,gpu")
    try:
        name1, name2 = probe.pool_name(w1), probe.pool_name(w2)
        shared = submit(corpus, env, tiny_checkpoint)
        routed = submit(write_corpus(tmp_path / "g.jsonl", 20, prefix="g"), env,
                        tiny_checkpoint, "--queue", "gpu")
        probe.wait_done(shared)
        probe.wait_done(routed)
        status = lensbatch("status", env=env).stdout
        workers = {str(w["name"]): w for w in probe.workers()}
    finally:
        w1.stop()
        w2.stop()
    by_worker = probe.results_by(shared)
    assert set(by_worker.values()) == {name1, name2}, "both workers took work"
    assert set(probe.results_by(routed).values()) == {name2}, "gpu queue: only w2"
    assert workers[name1]["queues"] == "cpu" and workers[name2]["queues"] == "cpu,gpu"
    assert workers[name1]["device"] == workers[name2]["device"] == "cpu"
    for worker in (workers[name1], workers[name2]):
        assert worker["heartbeat_at"] > worker["started_at"], "heartbeat refreshed"  # type: ignore[operator]
        assert worker["current_task"] is None and worker["online"]
    assert sum(int(w["documents_done"]) for w in workers.values()) == 140  # type: ignore[call-overload]
    for name in (name1, name2):
        assert name in status
    local = lensbatch("run", str(corpus), "--model", tiny_checkpoint, "--task-tokens",
                      TASK_TOKENS, env={"LENSBATCH_DATABASE_URL": sqlite_url})
    assert local.returncode == 0, local.stderr
    one = result_metrics(local.stdout.strip().splitlines()[-1].split()[-1],
                         {"LENSBATCH_DATABASE_URL": sqlite_url})
    two = result_metrics(shared, env)
    assert one.keys() == two.keys() and len(one) == 120
    for doc_id, row in one.items():
        for key, value in row.items():
            expected = pytest.approx(value, rel=1e-5) if isinstance(value, float) else value
            assert two[doc_id][key] == expected, (doc_id, key)
    FAULTS.add(FaultRow("none: 2 workers vs 1 (equal results)", 120, len(by_worker), 0,
                        0, 0.0, "both workers took work"))
    probe.close()


class Boom:
    """Unpickling this creates a file: proof that pickle content was (not) loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_pickle_refused_and_passwords_never_shown(
    tmp_path: Path, postgres_server, tiny_checkpoint: str  # type: ignore[no-untyped-def]
) -> None:
    redis_password, pg_password = "r3dis-" + uuid.uuid4().hex, "pg-" + uuid.uuid4().hex
    server = RedisServer(password=redis_password)
    server.start()
    # The test PostgreSQL trusts loopback, so any password connects; it must still
    # never be shown or stored.
    db_url = postgres_server.url.replace("lensbatch@", f"lensbatch:{pg_password}@")
    env = {"LENSBATCH_BROKER_URL": server.url, "LENSBATCH_DATABASE_URL": db_url}
    probe = Probe(db_url)
    lensbatch("db", "upgrade", env=env)
    marker = tmp_path / "pickle-was-loaded"
    w1 = Worker(env, tmp_path / "w1.log")
    try:
        probe.pool_name(w1)
        with Connection(server.url) as connection:
            queue = Queue("cpu", Exchange("cpu", "direct"), routing_key="cpu")
            connection.Producer().publish(
                Boom(marker), exchange=queue.exchange, routing_key="cpu", declare=[queue],
                serializer="pickle",
                headers={"task": "lensbatch.evaluate", "id": str(uuid.uuid4()), "lang": "py"},
            )
        probe.wait(lambda: "Refusing to deserialize" in w1.text(), 60, "pickle refused")
        job = submit(write_corpus(tmp_path / "c.jsonl", 10), env, tiny_checkpoint)
        probe.wait_done(job)
        shown = [lensbatch(*args, env=env) for args in
                 (("status", job), ("status",), ("jobs",), ("workers",), ("results", job))]
        stored = probe._read(lambda c: c.execute(  # type: ignore[attr-defined]
            select(schema.jobs)).all())
    finally:
        w1.stop()
        server.stop()
    assert not marker.exists(), "pickle content was deserialized"
    assert probe.status(job) == "done"
    texts = [w1.text(), *(r.stdout + r.stderr for r in shown), repr(stored)]
    for text in texts:
        assert redis_password not in text and pg_password not in text
    assert re.search(r"redis://:\*+@127\.0\.0\.1", w1.text())
    probe.close()
