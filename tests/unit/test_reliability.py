"""Reliability and security without services: redelivery settings, poison documents in
`lensbatch run`, SQL metacharacters in ids, and bad input rejected in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select

from lensbatch.queue import make_celery
from lensbatch.settings import Settings
from lensbatch.store import schema
from tests.cli import lensbatch, user_error_line
from tests.faults import POISON_WORD, make_poisoned_checkpoint

SOURCES = [p for d in ("lensbatch", "worker", "scheduler")
           for p in (Path(__file__).resolve().parents[2] / d).rglob("*.py")]
METACHARS = ["it's", "a'); DROP TABLE results; --", "%s %(x)s", 'q"uote\\', "semi;colon"]


def test_redelivery_settings_reach_kombu() -> None:
    settings = Settings.from_env({"LENSBATCH_VISIBILITY_TIMEOUT": "7",
                                  "LENSBATCH_RESTORE_INTERVAL": "2"})
    conf = make_celery(settings).conf
    assert conf.broker_transport_options == {
        "visibility_timeout": 7, "unacked_restore_interval": 2, "unacked_restore_throttle": 1}
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.task_acks_late and conf.worker_prefetch_multiplier == 1


def test_no_sql_built_from_strings() -> None:
    """Every statement is SQLAlchemy Core with bound parameters: nowhere in the
    application is SQL text built by formatting (constant PRAGMAs are the only raw SQL)."""
    pattern = re.compile(r"(text|execute|exec_driver_sql)\(\s*(f[\"']|[\"'][^\"']*[\"']\s*"
                         r"(%|\+|\.format))")
    offenders = [f"{p}:{i}" for p in SOURCES
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []


def test_sql_metacharacters_in_ids(tmp_path: Path, sqlite_url: str,
                                   tiny_checkpoint: str) -> None:
    env = {"LENSBATCH_DATABASE_URL": sqlite_url}
    corpus = tmp_path / "meta.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": f"Text number {n} here."}) + "\n"
                              for n, i in enumerate(METACHARS)))
    run = lensbatch("run", str(corpus), "--model", tiny_checkpoint, env=env)
    assert run.returncode == 0, run.stderr
    job = run.stdout.strip().splitlines()[-1].split()[-1]
    rows = [json.loads(line) for line in
            lensbatch("results", job, "--format", "jsonl", env=env).stdout.splitlines()]
    assert [r["doc_id"] for r in rows] == METACHARS
    for command in ("status", "cancel", "resume", "results"):
        user_error_line(lensbatch(command, "x'; DROP TABLE jobs; --", env=env), "no job")
    engine = create_engine(sqlite_url)
    assert {"jobs", "results", "documents"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_poison_document_in_local_run(tmp_path: Path, sqlite_url: str) -> None:
    model = make_poisoned_checkpoint(tmp_path / "poisoned")
    env = {"LENSBATCH_DATABASE_URL": sqlite_url}
    corpus = tmp_path / "c.jsonl"
    texts = ["A plain sentence.", f"A{POISON_WORD} sentence.", "Another plain one."]
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                              for i, t in enumerate(texts)))
    run = lensbatch("run", str(corpus), "--model", model, env=env)
    assert run.returncode == 0, run.stderr
    job = run.stdout.strip().splitlines()[-1].split()[-1]
    status = lensbatch("status", job, env=env).stdout
    assert "2 / 3" in status and "done" in status and "1 failed documents" in status
    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        failed = connection.execute(select(schema.document_failures)).all()
    engine.dispose()
    assert [(f.seq, f.attempts, f.final) for f in failed] == [(1, 3, True)]
    # resume needs a broker; an unreachable one changes nothing and hides its password.
    broken = {**env, "LENSBATCH_BROKER_URL": "redis://:hunter2@127.0.0.1:1/0"}
    result = lensbatch("resume", job, "--failed", env=broken)
    user_error_line(result, "cannot reach broker at 127.0.0.1:1")
    assert "hunter2" not in result.stderr
    assert "1 failed documents" in lensbatch("status", job, env=env).stdout
    # without --failed, the line names the local way to continue a job
    user_error_line(lensbatch("resume", job, env=broken), "cannot reach broker at 127.0.0.1:1",
                    "without a broker: ", f"lensbatch run --resume {job}")
    user_error_line(lensbatch("cancel", job, env=env), "already done")


@pytest.mark.parametrize("command", ["status", "jobs", "workers"])
def test_unreachable_database_names_host_not_password(command: str) -> None:
    env = {"LENSBATCH_DATABASE_URL": "postgresql+psycopg://u:hunter2@127.0.0.1:1/db"}
    result = lensbatch(command, env=env)
    user_error_line(result, "cannot reach database at 127.0.0.1:1")
    assert "hunter2" not in result.stderr + result.stdout


def test_negative_budget_rejected_before_broker(tmp_path: Path, sqlite_url: str) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    env = {"LENSBATCH_DATABASE_URL": sqlite_url,
           "LENSBATCH_BROKER_URL": "redis://:hunter2@127.0.0.1:1/0"}
    for flag in ("--batch-tokens", "--task-tokens"):
        user_error_line(lensbatch("submit", str(corpus), flag, "-5", env=env), flag)
    engine = create_engine(sqlite_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    if "jobs" in tables:  # nothing stored
        with create_engine(sqlite_url).connect() as connection:
            assert connection.execute(select(schema.jobs)).all() == []
