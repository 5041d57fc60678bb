"""Parquet: `export` round-trips every table of a job exactly; `results --format parquet`;
the SQL views answer without join keys."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Column, Engine, Float, Integer, String, Table, func, select, text

from lensbatch.store import schema
from lensbatch.store.export import job_tables
from scheduler.export import export_job
from tests.cli import lensbatch
from tests.jobdb import DOCS, finished_job, write_corpus


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: str) -> tuple[Engine, str]:
    tmp = tmp_path_factory.mktemp("export")
    corpus = write_corpus(tmp / "corpus.jsonl")
    engine, job_id = finished_job(f"sqlite:///{tmp / 'lensbatch.db'}", tiny_checkpoint, corpus,
                                  head_scores="document")
    with engine.connect() as connection:  # the worker recorded the model card
        card = connection.execute(select(schema.models)).one()
    assert (card.name, card.source) == (tiny_checkpoint, "local")
    assert card.config["n_layers"] == 2 and card.weight_shapes["W_E"] == [50257, 64]
    return engine, job_id


def db_rows(table: Table, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows as the export promises them: JSON as sorted-key text, timestamps in UTC."""
    out = []
    for row in rows:
        record = {}
        for column, value in zip(table.columns, row, strict=True):
            if value is not None and column.type.__class__.__name__ == "JSON":
                value = json.dumps(value, sort_keys=True)
            if isinstance(value, datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            record[column.name] = value
        out.append(record)
    return out


def pandas_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as plain Python values (NaN -> None, Timestamp -> datetime)."""
    records = []
    for raw in frame.to_dict("records"):
        record = {}
        for key, value in raw.items():
            if isinstance(value, pd.Timestamp):
                value = value.to_pydatetime()
            elif isinstance(value, float) and math.isnan(value):
                value = None
            elif hasattr(value, "item"):  # numpy scalar
                value = value.item()
            record[key] = value
        records.append(record)
    return records


def test_export_round_trip_is_exact(job: tuple[Engine, str], tmp_path: Path) -> None:
    engine, job_id = job
    written = export_job(engine, job_id, tmp_path / "out")
    with engine.connect() as connection:  # one exported row per hit
        hits = connection.scalar(select(func.sum(schema.results.c.induction_hits))
                                 .where(schema.results.c.job_id == job_id))
    heads = 2 * 4  # the tiny checkpoint's layers x heads
    assert written == {"jobs": 1, "documents": len(DOCS), "models": 1,
                       "job_documents": len(DOCS), "results": len(DOCS),
                       "head_scores": len(DOCS) * heads, "probes": 1, "probe_heads": heads,
                       "induction_hit_tokens": hits, "activation_stats": 0, "top_activations": 0,
                       "document_failures": 0, "head_totals": heads, "job_progress": 1}
    # What the store reads for the job, table by table (the packed tables in long form).
    for table, batches in job_tables(engine, job_id):
        name = table.name
        expected = db_rows(table, [row for batch in batches for row in batch])
        path = tmp_path / "out" / f"{name}.parquet"
        assert pq.read_table(path).to_pylist() == expected, name
        frame = pd.read_parquet(path)
        assert list(frame.columns) == [c.name for c in table.columns]
        assert pandas_records(frame) == expected, name
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert str(results["n_tokens"].dtype) == "int64"
    assert str(results["loss"].dtype) == "float64"
    assert str(results["created_at"].dtype) == "datetime64[us, UTC]"


def test_export_includes_tables_added_later(job: tuple[Engine, str], tmp_path: Path) -> None:
    """A new table with a job_id column is exported with no change to the export code."""
    engine, job_id = job
    extra = Table("extra_scores", schema.metadata, Column("job_id", String(64), primary_key=True),
                  Column("k", Integer, primary_key=True), Column("v", Float, nullable=True))
    try:
        extra.create(engine)
        with engine.begin() as connection:
            connection.execute(extra.insert(), [{"job_id": job_id, "k": 2, "v": None},
                                                {"job_id": job_id, "k": 1, "v": 0.5},
                                                {"job_id": "other", "k": 1, "v": 9.0}])
        assert export_job(engine, job_id, tmp_path)["extra_scores"] == 2
        assert pq.read_table(tmp_path / "extra_scores.parquet").to_pylist() == [
            {"job_id": job_id, "k": 1, "v": 0.5}, {"job_id": job_id, "k": 2, "v": None}]
    finally:
        schema.metadata.remove(extra)
        extra.drop(engine)


def test_export_and_results_parquet_cli(job: tuple[Engine, str], tmp_path: Path) -> None:
    engine, job_id = job
    env = {"LENSBATCH_DATABASE_URL": str(engine.url)}
    out = lensbatch("export", job_id, str(tmp_path / "dir"), env=env)
    assert out.returncode == 0, out.stderr
    assert f"results.parquet\t{len(DOCS)} rows" in out.stdout
    result = lensbatch("results", job_id, "--format", "parquet", "-o",
                       str(tmp_path / "r.parquet"), env=env)
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(tmp_path / "r.parquet")
    assert list(frame["doc_id"]) == [d["id"] for d in DOCS]
    jsonl = [json.loads(line) for line in
             lensbatch("results", job_id, "--format", "jsonl", env=env).stdout.splitlines()]
    assert pandas_records(frame) == jsonl
    missing = lensbatch("results", job_id, "--format", "parquet", env=env)
    assert missing.returncode == 2 and "needs --output" in missing.stderr


def test_views_answer_without_join_keys(job: tuple[Engine, str]) -> None:
    engine, job_id = job
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT doc_id, source, n_chars, model, loss, n_tokens FROM v_results "
            "WHERE job_id = :job ORDER BY loss DESC"), {"job": job_id}).all()
        jobs = connection.execute(text("SELECT * FROM v_jobs WHERE job_id = :job"),
                                  {"job": job_id}).one()._mapping
        r = schema.results
        expected_loss = connection.execute(
            select(r.c.nll_sum, r.c.n_predictions).where(r.c.job_id == job_id)).all()
    assert {row.doc_id for row in rows} == {d["id"] for d in DOCS}
    assert [row.loss for row in rows] == sorted((row.loss for row in rows), reverse=True)
    assert {row.doc_id: row.n_chars for row in rows} == {d["id"]: len(d["text"]) for d in DOCS}
    assert jobs["documents_done"] == len(DOCS) and jobs["status"] == "done"
    assert jobs["loss"] == pytest.approx(sum(a for a, _ in expected_loss)
                                         / sum(b for _, b in expected_loss))


def test_task_log_line_is_structured(job: tuple[Engine, str]) -> None:
    from worker.service import TaskDone
    from worker.tasklog import task_line

    _, job_id = job
    line = task_line(job_id, [0, 2], TaskDone(written=2, tokens=300), 1.5, "cpu")
    fields = dict(pair.split("=", 1) for pair in line.split()[1:])
    assert line.startswith("task ")
    assert fields == {"job": job_id, "seqs": "0-2", "documents": "2", "written": "2",
                      "tokens": "300", "seconds": "1.50", "tokens_per_s": "200.0", "device": "cpu"}
