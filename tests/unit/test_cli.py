"""The CLI, run as users run it: one clear line for a mistake, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from lensbatch.store import schema
from tests.cli import count_rows, lensbatch, run_without_torch, user_error_line


@pytest.fixture()
def env(sqlite_url: str) -> dict[str, str]:
    return {"LENSBATCH_DATABASE_URL": sqlite_url}


def test_malformed_jsonl_names_file_and_line(tmp_path: Path, env, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"text": "fine"}\n{"text": "also fine"}\n{"text": oops}\n')
    result = lensbatch("run", str(corpus), "--model", "gpt2-small-random", env=env)
    user_error_line(result, "bad.jsonl:3", "invalid JSON")
    assert count_rows(sqlite_url, schema.jobs) == 0
    assert count_rows(sqlite_url, schema.documents) == 0


def test_non_utf8_file(tmp_path: Path, env) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes("caf\xe9 au lait".encode("latin-1"))
    user_error_line(lensbatch("run", str(corpus), env=env), "latin1.txt", "UTF-8")


def test_empty_corpus(tmp_path: Path, env) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "empty.jsonl"
    corpus.write_text("\n\n")
    user_error_line(lensbatch("run", str(corpus), env=env), "empty")


def test_unknown_model(tmp_path: Path, env) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    user_error_line(lensbatch("run", str(corpus), "--model", "no-such-model-xyz", env=env),
                      "no-such-model-xyz")


def test_duplicate_id_and_bad_budget(tmp_path: Path, env) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "dup.jsonl"
    corpus.write_text('{"id": "a", "text": "one"}\n{"id": "a", "text": "two"}\n')
    user_error_line(lensbatch("run", str(corpus), env=env), "dup.jsonl:2", "duplicate")
    user_error_line(lensbatch("run", str(corpus), "--batch-tokens", "0", env=env),
                      "--batch-tokens")


def test_run_then_results_jsonl(tmp_path: Path, env, tiny_checkpoint: str) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "one.txt").write_text("The cat sat on the mat. The cat sat on the mat.")
    (corpus / "two.md").write_text("# Notes\n\nAttention heads attend; induction heads copy.")
    result = lensbatch("run", str(corpus), "--model", tiny_checkpoint, env=env)
    assert result.returncode == 0, result.stderr
    assert "tokens per second" in result.stdout
    job_id = result.stdout.strip().splitlines()[-1].split()[-1]
    rows = [json.loads(line) for line in
            lensbatch("results", job_id, "--format", "jsonl", env=env).stdout.splitlines()]
    assert [r["doc_id"] for r in rows] == ["one.txt", "two.md"]
    for row in rows:
        assert row["n_predictions"] == row["n_tokens"] - 1
        assert row["loss"] == pytest.approx(row["nll_sum"] / row["n_predictions"])
    assert rows[0]["induction_candidates"] > 0  # "The cat sat on the mat." repeats
    csv_out = lensbatch("results", job_id, "--format", "csv", env=env).stdout.splitlines()
    assert csv_out[0].startswith("doc_id,n_tokens,n_predictions,nll_sum,loss")
    assert len(csv_out) == 3


def test_unknown_job(env, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    assert lensbatch("db", "upgrade", env=env).returncode == 0
    user_error_line(lensbatch("results", "nope'; DROP TABLE jobs; --", env=env), "no job",
                    f"in database {sqlite_url}")


def test_inspect_prints_seed_shapes(tiny_checkpoint: str) -> None:
    out = lensbatch("inspect", tiny_checkpoint).stdout
    assert "Number of layers: 2" in out
    assert "Number of heads per layer: 4" in out
    assert "Maximum context window: 64" in out
    assert "Shape of `embeddings` matrix: 50257 x 64" in out
    assert "Shape of `query` matrix: 64 x 16 (per head; W_Q is 2 x 4 x 64 x 16)" in out
    assert "Shape of `unembeddings` matrix: 64 x 50257" in out


def test_help_does_not_import_torch() -> None:
    run_without_torch("import sys; sys.argv=['lensbatch','--help']\n"
                      "from scheduler import cli\n"
                      "try:\n    cli.app()\nexcept SystemExit:\n    pass\n")


def test_unknown_queue_is_refused_before_anything_is_stored(tmp_path: Path, env,  # type: ignore[no-untyped-def]
                                                            sqlite_url: str) -> None:
    from lensbatch.store.db import ensure_schema

    ensure_schema(sqlite_url)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    # The broker URL points nowhere: the queue is checked before the broker is tried.
    result = lensbatch("submit", str(corpus), "--queue", "nosuchqueue",
                       env={**env, "LENSBATCH_BROKER_URL": "redis://127.0.0.1:1/0"})
    user_error_line(result, "--queue", "cpu, gpu", "nosuchqueue")
    assert count_rows(sqlite_url, schema.jobs) == 0
    user_error_line(lensbatch("worker", "--queues", "cpu,nosuchqueue", env=env), "--queues")


def test_windows_are_checked_before_anything_is_stored(tmp_path: Path, env,  # type: ignore[no-untyped-def]
                                                       sqlite_url: str) -> None:
    from lensbatch.store.db import ensure_schema

    ensure_schema(sqlite_url)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    user_error_line(lensbatch("run", str(corpus), "--windows", "rolling", env=env),
                    "--windows", "sliding, disjoint", "rolling")
    user_error_line(lensbatch("run", str(corpus), "--windows", "disjoint", "--stride", "8",
                              env=env), "--stride", "disjoint")
    assert count_rows(sqlite_url, schema.jobs) == 0


def test_disjoint_behaviour_only_run(tmp_path: Path, env, tiny_checkpoint: str,  # type: ignore[no-untyped-def]
                                     sqlite_url: str) -> None:
    corpus = tmp_path / "c.jsonl"
    text = "The lighthouse keeper wrote in the log: the lamp is lit, all is well. " * 8
    corpus.write_text(json.dumps({"text": text}) + "\n")
    result = lensbatch("run", str(corpus), "--model", tiny_checkpoint, "--windows", "disjoint",
                       "--no-heads", env=env)
    assert result.returncode == 0, result.stderr
    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        row = connection.execute(select(schema.results)).one()
    engine.dispose()
    # Windows of 64 tokens that do not overlap, each predicting 64 tokens (the last
    # pushed right): one window per 64 predictions.
    assert row.n_predictions == row.n_tokens - 1 > 128
    assert row.n_windows == -(-row.n_predictions // 64)
    assert count_rows(sqlite_url, schema.head_scores) == count_rows(sqlite_url, schema.probes) == 0
