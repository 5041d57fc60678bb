"""Bad input is refused before anything is stored, with the file and line named: NUL
characters, lone surrogates, documents over the size limit, a stride longer than the
model's context; and bad settings or a database lensbatch cannot use get one line."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from lensbatch.corpus import DEFAULT_MAX_DOCUMENT_BYTES, read_corpus
from lensbatch.errors import CorpusError, JobSpecError
from lensbatch.jobspec import JobSpec
from lensbatch.models import model_context
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from lensbatch.store.jobs import create_job
from tests.cli import count_rows, lensbatch, user_error_line
from worker.engine.windows import split_windows


def refusal(corpus: Path | str, limit: int = DEFAULT_MAX_DOCUMENT_BYTES) -> str:
    with pytest.raises(CorpusError) as caught:
        list(read_corpus(str(corpus), limit))
    return str(caught.value)


def jsonl(path: Path, *objects: dict[str, object]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects))
    return path


def test_nul_character_is_refused_with_file_and_line(tmp_path: Path) -> None:
    corpus = jsonl(tmp_path / "nul.jsonl", {"text": "fine"}, {"text": "bad\u0000text"})
    assert refusal(corpus) == (f"{corpus}:2: 'text' contains a NUL character (U+0000) at "
                               "character 3; remove it (PostgreSQL cannot store one, so no "
                               "database takes it)")
    ids = jsonl(tmp_path / "ids.jsonl", {"id": "a\u0000", "text": "fine"})
    assert refusal(ids).startswith(f"{ids}:1: 'id' contains a NUL character")
    txt = tmp_path / "nul.txt"
    txt.write_bytes(b"line one\nline two has \x00 here\n")
    assert refusal(txt).startswith(f"{txt}:2: the file has a NUL character (U+0000) at "
                                   "column 14")


def test_lone_surrogate_is_refused(tmp_path: Path) -> None:
    corpus = tmp_path / "surrogate.jsonl"
    corpus.write_text('{"text": "fine"}\n{"text": "lone \\ud800 half"}\n')
    assert refusal(corpus) == (f"{corpus}:2: 'text' is not valid Unicode (lone surrogate "
                               "U+D800 at character 5)")


def test_documents_over_the_size_limit_are_refused(tmp_path: Path) -> None:
    corpus = jsonl(tmp_path / "big.jsonl", {"text": "a" * 200}, {"text": "é" * 150})
    assert refusal(corpus, limit=299) == (
        f"{corpus}:2: document is 300 bytes of UTF-8, over the limit of 299 (raise it with "
        "--max-document-bytes or LENSBATCH_MAX_DOCUMENT_BYTES)")  # é: 2 bytes each
    assert len(list(read_corpus(str(corpus), 300))) == 2
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("short")
    (folder / "b.md").write_text("x" * 1001)
    assert refusal(folder, limit=1000).startswith(f"{folder / 'b.md'}: document is 1,001 "
                                                  "bytes of UTF-8, over the limit of 1,000")
    assert DEFAULT_MAX_DOCUMENT_BYTES == 10_000_000


def test_an_overlong_jsonl_line_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    corpus = tmp_path / "line.jsonl"
    limit = 10
    cap = limit * 6 + (1 << 20)  # 6 bytes of JSON per byte of text, plus 1 MiB
    corpus.write_text('{"text": "' + "x" * (cap + 100) + '"}\n')
    assert refusal(corpus, limit) == (
        f"{corpus}:1: line is over {cap:,} bytes, longer than a document within the limit "
        "of 10 bytes can be (raise it with --max-document-bytes or "
        "LENSBATCH_MAX_DOCUMENT_BYTES)")


def test_overlong_ids_are_refused(tmp_path: Path) -> None:
    corpus = jsonl(tmp_path / "ids.jsonl", {"id": "i" * 513, "text": "fine"})
    assert refusal(corpus) == (f"{corpus}:1: document id is 513 characters, over the limit "
                               "of 512")


def test_stdin_corpus_can_be_read_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """A transaction retried after a deadlock reads its corpus again."""
    from lensbatch import corpus

    corpus._stdin_copy.cache_clear()
    stream = io.TextIOWrapper(io.BytesIO(b'{"text": "one"}\n{"text": "two"}\n'))
    monkeypatch.setattr(sys, "stdin", stream)
    try:
        first = [d.text for d in read_corpus("-")]
        assert [d.text for d in read_corpus("-")] == first == ["one", "two"]
    finally:
        corpus._stdin_copy.cache_clear()


def test_limit_option_and_setting_reach_the_cli(tmp_path: Path, sqlite_url: str) -> None:
    corpus = jsonl(tmp_path / "c.jsonl", {"text": "a" * 50}, {"text": "b" * 120})
    env = {"LENSBATCH_DATABASE_URL": sqlite_url}
    # `run` reads the corpus after loading the model: the refusal comes from the corpus.
    user_error_line(lensbatch("run", str(corpus), "--model", "toy-induction",
                              "--max-document-bytes", "100", env=env),
                    "c.jsonl:2: document is 120 bytes of UTF-8, over the limit of 100")
    assert count_rows(sqlite_url, schema.jobs) == 0
    assert count_rows(sqlite_url, schema.documents) == 0
    user_error_line(lensbatch("run", str(corpus), "--max-document-bytes", "-1", env=env),
                    "--max-document-bytes must be positive, got -1")
    user_error_line(lensbatch("jobs", env={**env, "LENSBATCH_MAX_DOCUMENT_BYTES": "10MB"}),
                    "LENSBATCH_MAX_DOCUMENT_BYTES must be a positive whole number, got '10MB'")


def test_model_context_is_known_without_loading(tiny_checkpoint: str) -> None:
    assert model_context("toy-induction") == 1024
    assert model_context("gpt2-small-random") == 1024
    assert model_context(tiny_checkpoint) == 64  # config.json's n_positions
    assert model_context("gpt2-small") is None  # a hub model: the worker checks it


def test_stride_longer_than_the_context_is_refused_at_submit(tmp_path: Path, sqlite_url: str,
                                                            tiny_checkpoint: str) -> None:
    ensure_schema(sqlite_url)
    corpus = jsonl(tmp_path / "c.jsonl", {"text": "short"})
    env = {"LENSBATCH_DATABASE_URL": sqlite_url, "LENSBATCH_BROKER_URL": "redis://127.0.0.1:1/0"}
    user_error_line(lensbatch("run", str(corpus), "--model", "toy-induction", "--stride", "5000",
                              env=env),
                    "--stride 5000 is too large for toy-induction: its context is 1024 tokens "
                    "(use 1 to 1023, or 0 for half the context)")
    # Checked before the broker: this one is unreachable.
    user_error_line(lensbatch("submit", str(corpus), "--model", tiny_checkpoint, "--stride", "64",
                              env=env), "--stride 64 is too large", "its context is 64 tokens")
    assert count_rows(sqlite_url, schema.jobs) == 0
    with pytest.raises(JobSpecError):
        JobSpec(stride=1024).check_stride(1024)
    assert JobSpec(stride=1023).check_stride(1024).stride == 1023


def test_short_documents_pass_whatever_the_stride() -> None:
    assert [w.tokens for w in split_windows(0, list(range(10)), n_ctx=16, stride=5000)] == [
        list(range(10))]
    with pytest.raises(ValueError, match="stride must be in 1..15"):
        split_windows(0, list(range(40)), n_ctx=16, stride=5000)


def test_worker_fails_a_job_whose_stride_its_model_cannot_take(
    tmp_path: Path, sqlite_url: str, tiny_checkpoint: str
) -> None:
    """As for a hub model, whose context only the worker knows: the job fails once, with
    the reason, instead of every document failing three times."""
    from worker.service import Runtime, process_task

    engine = ensure_schema(sqlite_url)
    corpus = jsonl(tmp_path / "c.jsonl", {"text": "one document"}, {"text": "another one"})
    job = create_job(engine, str(corpus), JobSpec(model=tiny_checkpoint, stride=5000))
    assert process_task(engine, job.job_id, [0, 1], Runtime(device="cpu")).written == 0
    with engine.connect() as connection:
        row = connection.execute(select(schema.jobs.c.status, schema.jobs.c.error)
                                 .where(schema.jobs.c.id == job.job_id)).one()
    assert row.status == "failed"
    assert row.error.startswith("--stride 5000 is too large for ")
    assert count_rows(sqlite_url, schema.document_failures) == 0
    assert count_rows(sqlite_url, schema.results) == 0


def test_a_schema_from_a_newer_lensbatch_is_one_line(sqlite_url: str) -> None:
    ensure_schema(sqlite_url)
    engine = create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    user_error_line(lensbatch("jobs", env={"LENSBATCH_DATABASE_URL": sqlite_url}),
                    "has a schema revision this lensbatch does not know", "upgrade lensbatch")


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://u:hunter2@127.0.0.1:notaport/db",
    "no-scheme-hunter2",
    "nosuchdriver://u:hunter2@127.0.0.1/db",
])
def test_invalid_database_url_is_one_line_without_password(url: str) -> None:
    result = lensbatch("jobs", env={"LENSBATCH_DATABASE_URL": url})
    user_error_line(result, "invalid database URL for ")
    assert "hunter2" not in result.stderr + result.stdout


def test_an_output_path_that_cannot_be_written_is_one_line(tmp_path: Path,
                                                           sqlite_url: str) -> None:
    engine = ensure_schema(sqlite_url)
    job = create_job(engine, str(jsonl(tmp_path / "c.jsonl", {"text": "hello"})), JobSpec())
    env = {"LENSBATCH_DATABASE_URL": sqlite_url}
    missing = tmp_path / "missing" / "results.csv"
    user_error_line(lensbatch("results", job.job_id, "--format", "csv", "--output",
                              str(missing), env=env), f"{missing}: No such file or directory")
    user_error_line(lensbatch("export", job.job_id, "/proc/lensbatch-export", env=env),
                    "/proc/lensbatch-export: No such file or directory")
