"""Bad input and unlucky operators against a real PostgreSQL, a real Redis and real
`lensbatch` processes: one line on standard error each, no traceback, no document text,
no password, nothing half-written."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from lensbatch.jobspec import JobSpec
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from lensbatch.store.jobs import create_job
from tests.cli import LENSBATCH, count_rows, lensbatch, user_error_line
from tests.faults import wait_for
from tests.services import PostgresServer

pytestmark = pytest.mark.integration

SECRET_TEXT = "Confidential corpus text 7f3a that must never be printed."


def jsonl(path: Path, *texts: str) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


@pytest.fixture()
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server, or TLS spoken
    to a plain one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("backend", ["sqlite_url", "postgres_url"])
def test_nul_character_is_refused_alike_on_both_databases(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, redis_server  # type: ignore[no-untyped-def]
) -> None:
    url = request.getfixturevalue(backend)
    env = {"LENSBATCH_DATABASE_URL": url, "LENSBATCH_BROKER_URL": redis_server.url}
    corpus = jsonl(tmp_path / "nul.jsonl", SECRET_TEXT, "a NUL \u0000 in " + SECRET_TEXT)
    result = lensbatch("submit", str(corpus), "--model", "toy-induction", env=env)
    user_error_line(result, f"{corpus}:2: 'text' contains a NUL character (U+0000) at "
                            "character 6")
    assert SECRET_TEXT not in result.stderr
    txt = tmp_path / "nul.txt"
    txt.write_text(SECRET_TEXT + "\nsecond line \u0000\n")
    user_error_line(lensbatch("submit", str(txt), env=env),
                    f"{txt}:2: the file has a NUL character (U+0000) at column 13")
    assert count_rows(url, schema.jobs) == count_rows(url, schema.documents) == 0


def test_size_limit_by_default_and_by_setting(tmp_path: Path, redis_server,  # type: ignore[no-untyped-def]
                                              postgres_url: str) -> None:
    env = {"LENSBATCH_DATABASE_URL": postgres_url, "LENSBATCH_BROKER_URL": redis_server.url}
    big = tmp_path / "big.txt"
    big.write_text("word " * 2_000_001)  # 10,000,005 bytes
    user_error_line(lensbatch("submit", str(big), env=env),
                    f"{big}: document is 10,000,005 bytes of UTF-8, over the limit of "
                    "10,000,000 (raise it with --max-document-bytes or "
                    "LENSBATCH_MAX_DOCUMENT_BYTES)")
    assert count_rows(postgres_url, schema.documents) == 0
    raised = lensbatch("submit", str(big), env={**env, "LENSBATCH_MAX_DOCUMENT_BYTES": "10000005"})
    assert raised.returncode == 0, raised.stderr
    assert count_rows(postgres_url, schema.documents) == 1


def test_integrity_error_is_one_line_without_texts(tmp_path: Path, redis_server,  # type: ignore[no-untyped-def]
                                                  postgres_url: str) -> None:
    env = {"LENSBATCH_DATABASE_URL": postgres_url, "LENSBATCH_BROKER_URL": redis_server.url}
    engine = ensure_schema(postgres_url)
    with engine.begin() as connection:  # an operator's constraint the corpus breaks
        connection.execute(text("ALTER TABLE documents ADD CONSTRAINT short_texts "
                                "CHECK (n_chars < 40)"))
    result = lensbatch("submit", str(jsonl(tmp_path / "c.jsonl", "short", SECRET_TEXT)),
                       "--model", "toy-induction", env=env)
    host = postgres_url.split("@")[1].split("/")[0]
    user_error_line(result, f"database at {host} failed during `lensbatch submit`: "
                            "CheckViolation (SQLSTATE 23514, constraint short_texts)")
    assert SECRET_TEXT not in result.stderr and "INSERT" not in result.stderr
    assert count_rows(postgres_url, schema.jobs) == count_rows(postgres_url, schema.documents) == 0


def test_database_stopped_mid_watch_is_one_line(tmp_path: Path) -> None:
    server = PostgresServer()
    server.start()
    try:
        url = server.url
        engine = ensure_schema(url)
        job = create_job(engine, str(jsonl(tmp_path / "c.jsonl", SECRET_TEXT)),
                         JobSpec(model="toy-induction"))
        engine.dispose()
        out = tmp_path / "watch.out"
        with out.open("w") as stdout:
            watch = subprocess.Popen(
                [LENSBATCH, "status", job.job_id, "--watch", "--interval", "0.2"],
                env={**os.environ, "LENSBATCH_DATABASE_URL": url}, stdout=stdout,
                stderr=subprocess.PIPE, text=True)
        wait_for(lambda: f"job={job.job_id}" in out.read_text(), 60, "the watch running")
        server.shutdown()
        _, err = watch.communicate(timeout=120)
    finally:
        server.stop()
    assert watch.returncode == 2, err
    assert err.splitlines() == [f"lensbatch: error: database at 127.0.0.1:{server.port} failed "
                                "during `lensbatch status`: OperationalError"]


def test_every_check_fails_fast_with_one_line(tmp_path: Path, redis_server,  # type: ignore[no-untyped-def]
                                              sqlite_url: str, silent_port: int) -> None:
    """Each would wait for minutes, or for ever, without a deadline; the subprocess's own
    timeout fails the test if one comes back."""
    corpus = str(jsonl(tmp_path / "c.jsonl", "hello"))
    plain_as_tls = f"rediss://{redis_server.url.split('://')[1]}"
    for broker in (plain_as_tls, f"redis://:hunter2@127.0.0.1:{silent_port}/0"):
        result = lensbatch("submit", corpus, env={"LENSBATCH_DATABASE_URL": sqlite_url,
                                                  "LENSBATCH_BROKER_URL": broker}, timeout=60)
        user_error_line(result, "cannot reach broker at 127.0.0.1:")
    database = f"postgresql+psycopg://u:hunter2@127.0.0.1:{silent_port}/db"
    for command in (("jobs",), ("db", "upgrade")):
        result = lensbatch(*command, env={"LENSBATCH_DATABASE_URL": database}, timeout=60)
        user_error_line(result, f"cannot reach database at 127.0.0.1:{silent_port}")
        assert "hunter2" not in result.stderr


def test_standard_input_corpus_and_its_refusals(redis_server, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """`-` is read from a copy of standard input (a retried transaction reads it again)."""
    env = {"LENSBATCH_DATABASE_URL": sqlite_url, "LENSBATCH_BROKER_URL": redis_server.url}
    lines = [json.dumps({"id": f"s{i}", "text": f"text {i} {SECRET_TEXT}"}) for i in range(3)]
    done = lensbatch("submit", "-", env=env, stdin="\n".join(lines).encode())
    assert done.returncode == 0, done.stderr
    assert count_rows(sqlite_url, schema.job_documents) == 3
    refused = lensbatch("submit", "-", "--max-document-bytes", "60", env=env,
                        stdin="\n".join(lines).encode())
    user_error_line(refused, "<stdin>:1: document is 64 bytes of UTF-8, over the limit of 60")
    assert SECRET_TEXT not in refused.stderr
    assert count_rows(sqlite_url, schema.jobs) == 1


def test_broker_refusing_messages_after_the_job_is_stored_names_resume(
    tmp_path: Path, redis, sqlite_url: str  # type: ignore[no-untyped-def]
) -> None:
    """The broker answers the check but refuses to store messages (out of memory): the
    job is stored, `submit` says so in one line, and `resume` queues it later."""
    import redis as redis_client

    client = redis_client.Redis(port=redis.port)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    env = {"LENSBATCH_DATABASE_URL": sqlite_url, "LENSBATCH_BROKER_URL": redis.url}
    result = lensbatch("submit", str(jsonl(tmp_path / "c.jsonl", SECRET_TEXT)), "--model",
                       "toy-induction", env=env)
    line = user_error_line(result, "is stored but its tasks could not be queued at "
                                   f"127.0.0.1:{redis.port} (OperationalError); once the "
                                   "broker is back: lensbatch resume ")
    job_id = line.rsplit(" ", 1)[1]
    assert count_rows(sqlite_url, schema.jobs) == 1
    client.config_set("maxmemory", "0")
    resumed = lensbatch("resume", job_id, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert client.llen("cpu") == 1
    client.close()
