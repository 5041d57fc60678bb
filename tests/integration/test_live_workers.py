"""With real `lensbatch worker` processes: passwords of every reserved character are
never shown, `submit` warns when no live worker consumes its queue, and a worker fails
once a job whose stride its model cannot take."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

from lensbatch.jobspec import JobSpec
from lensbatch.settings import Settings
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from lensbatch.store.jobs import create_job
from scheduler.enqueue import enqueue
from tests.cli import lensbatch, user_error_line
from tests.faults import Probe, Worker, write_corpus
from tests.services import RedisServer

pytestmark = pytest.mark.integration

# Every character RFC 3986 reserves, the percent sign and a space.
HOSTILE = ":/?#[]@!$&'()*+,;=% x"
WARNING = "lensbatch: warning: no live worker consumes queue"


def shown_pieces(password: str) -> list[str]:
    """The password, its encodings, and every 4-character piece of it."""
    return [password, quote(password, safe=""), *(password[i:i + 4]
                                                   for i in range(len(password) - 3))]


def test_passwords_with_every_reserved_character_are_never_shown(
    tmp_path: Path, postgres_server, tiny_checkpoint: str  # type: ignore[no-untyped-def]
) -> None:
    redis = RedisServer(password=HOSTILE)
    redis.start()
    encoded = quote(HOSTILE, safe="")
    # The test PostgreSQL trusts loopback: any password connects, and must not be shown.
    pg_host = postgres_server.url.split("@", 1)[1]
    env = {"LENSBATCH_BROKER_URL": f"redis://:{encoded}@127.0.0.1:{redis.port}/0",
           "LENSBATCH_DATABASE_URL": f"postgresql+psycopg://lensbatch:{encoded}@{pg_host}"}
    raw_db = {"LENSBATCH_DATABASE_URL": f"postgresql+psycopg://lensbatch:{HOSTILE}@{pg_host}"}
    raw_broker = {"LENSBATCH_BROKER_URL": f"redis://:{HOSTILE}@127.0.0.1:{redis.port}/0"}
    wrong = {"LENSBATCH_BROKER_URL": f"redis://:{quote('wrong' + HOSTILE, safe='')}@127.0.0.1:"
                                     f"{redis.port}/0"}
    corpus = str(write_corpus(tmp_path / "c.jsonl", 4))
    upgraded = lensbatch("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "postgresql+psycopg://lensbatch:***@127.0.0.1" in upgraded.stdout
    refused = [lensbatch("db", "upgrade", env={**env, **raw_db}),  # host misread: unreachable
               lensbatch("submit", corpus, env={**env, **raw_broker}),
               lensbatch("worker", env={**env, **raw_broker}),
               lensbatch("submit", corpus, env={**env, **wrong})]
    for result in refused:
        user_error_line(result)
    probe = Probe(env["LENSBATCH_DATABASE_URL"])
    worker = Worker(env, tmp_path / "w.log")
    try:
        probe.pool_name(worker)
        submitted = lensbatch("submit", corpus, "--model", tiny_checkpoint, env=env)
        assert submitted.returncode == 0, submitted.stderr
        probe.wait_done(submitted.stdout.strip())
        status = lensbatch("status", env=env)
    finally:
        worker.stop()
        redis.stop()
        probe.close()
    assert probe.status(submitted.stdout.strip()) == "done"
    assert "broker redis://:***@127.0.0.1" in worker.text()  # the banner, masked
    shown = [upgraded, *refused, submitted, status]
    texts = [worker.text(), repr(Settings.from_env(env)),
             *(r.stdout + r.stderr for r in shown)]
    for piece in shown_pieces(HOSTILE) + shown_pieces("wrong" + HOSTILE):
        for shown_text in texts:
            assert piece not in shown_text, (piece, shown_text[-2000:])


def test_submit_warns_for_a_queue_no_live_worker_consumes(
    tmp_path: Path, redis: RedisServer, postgres_url: str, tiny_checkpoint: str
) -> None:
    env = {"LENSBATCH_BROKER_URL": redis.url, "LENSBATCH_DATABASE_URL": postgres_url}
    corpus = str(write_corpus(tmp_path / "c.jsonl", 3))
    alone = lensbatch("submit", corpus, "--model", tiny_checkpoint, env=env)
    assert alone.returncode == 0 and alone.stdout.strip()
    assert alone.stderr.splitlines() == [
        f"{WARNING} cpu (none has sent a heartbeat in the last 30 s); the job waits for one: "
        "lensbatch worker --queues cpu"]
    probe = Probe(postgres_url)
    worker = Worker(env, tmp_path / "w.log", queues="cpu")
    try:
        probe.pool_name(worker)
        served = lensbatch("submit", corpus, "--model", tiny_checkpoint, env=env)
        unserved = lensbatch("submit", corpus, "--model", tiny_checkpoint, "--queue", "gpu",
                             env=env)
        # A hub model's context is known only to the worker: a job stored with a stride
        # the model cannot take (as the CLI stores a hub model's) fails once, with why.
        engine = ensure_schema(postgres_url)
        stride_job = create_job(engine, corpus, JobSpec(model=tiny_checkpoint, stride=5000))
        enqueue(Settings.from_env(env), stride_job.job_id, stride_job.tasks, "cpu")
        probe.wait_done(stride_job.job_id)
        probe.wait_done(served.stdout.strip())
    finally:
        worker.stop()
    assert served.returncode == 0 and served.stderr == ""
    assert unserved.returncode == 0
    assert unserved.stderr.splitlines()[0].startswith(f"{WARNING} gpu ")
    assert probe.status(served.stdout.strip()) == "done"
    job = schema.jobs
    with engine.connect() as connection:
        status, error = connection.execute(select(job.c.status, job.c.error)
                                           .where(job.c.id == stride_job.job_id)).one()
    assert status == "failed"
    assert error == (f"--stride 5000 is too large for {tiny_checkpoint}: its context is 64 "
                     "tokens (use 1 to 63, or 0 for half the context)")
    assert probe.result_seqs(stride_job.job_id) == []
    failures = probe.count(schema.document_failures)
    probe.close()
    assert failures == 0
