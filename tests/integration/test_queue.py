"""A real `lensbatch worker` consumes a submitted job through Redis into PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from lensbatch.store import schema
from tests.cli import LENSBATCH, lensbatch

pytestmark = pytest.mark.integration


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [LENSBATCH, "worker", "--queues", "cpu", "--concurrency", "1", "--device", "cpu"],
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )


def wait_for_job(url: str, job_id: str, timeout: float = 240) -> str:
    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                status = connection.scalar(
                    select(schema.jobs.c.status).where(schema.jobs.c.id == job_id))
            if status in ("done", "failed", "cancelled"):
                return str(status)
            time.sleep(0.5)
    finally:
        engine.dispose()
    raise TimeoutError(f"job {job_id} not finished after {timeout}s")


def test_worker_consumes_submitted_job(tmp_path: Path, redis_server, postgres_url,  # type: ignore[no-untyped-def]
                                       tiny_checkpoint: str) -> None:
    env = {"LENSBATCH_BROKER_URL": redis_server.url, "LENSBATCH_DATABASE_URL": postgres_url}
    corpus = tmp_path / "corpus.jsonl"
    texts = [f"Document {i}: the quick brown fox jumps over the lazy dog {i} times."
             for i in range(12)]
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                              for i, t in enumerate(texts)))
    submitted = lensbatch("submit", str(corpus), "--model", tiny_checkpoint,
                          "--task-tokens", "40", env=env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        assert wait_for_job(postgres_url, job_id) == "done", (tmp_path / "worker.log").read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    rows = [json.loads(line) for line in
            lensbatch("results", job_id, "--format", "jsonl", env=env).stdout.splitlines()]
    assert [r["doc_id"] for r in rows] == [f"d{i}" for i in range(12)]
    assert all(r["n_predictions"] == r["n_tokens"] - 1 > 0 for r in rows)
    status = lensbatch("status", job_id, env=env).stdout
    assert "12 / 12" in status and "done" in status


def test_submit_with_unreachable_broker_writes_nothing(tmp_path: Path, sqlite_url: str) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    env = {"LENSBATCH_BROKER_URL": "redis://:secret@127.0.0.1:1/0",
           "LENSBATCH_DATABASE_URL": sqlite_url}
    result = lensbatch("submit", str(corpus), env=env)
    assert result.returncode == 2
    assert "cannot reach broker at 127.0.0.1:1" in result.stderr
    assert "secret" not in result.stderr
