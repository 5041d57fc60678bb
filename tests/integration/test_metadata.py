"""A corpus's own JSONL fields kept as document metadata, on SQLite and on PostgreSQL
(COPY): stored across insert chunks, typed by kind, the same columns in `results` from
either database and either Parquet path, in v_results and in the export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, select, text

from lensbatch.jobspec import JobSpec
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from lensbatch.store.jobs import INSERT_CHUNK, create_job
from lensbatch.store.queries import result_layout, result_rows
from scheduler.export import export_job, write_results_parquet

pytestmark = pytest.mark.integration

DOCS: list[dict[str, Any]] = [
    {"id": "cat", "text": "The cat sat on the mat. The cat sat on the mat.", "source": "wiki",
     "label": 1, "weight": 2},
    {"id": "dog", "text": "A dog ran along the beach at dawn.", "source": "news", "label": 2,
     "weight": 0.5, "tags": ["a", {"b": 1}], "ok": True},
    {"id": "bare", "text": "No fields of its own."},
    {"id": "odd", "text": "Its loss field clashes with a metric's column.", "loss": "own",
     "label": None, "source": "", "ok": False},
]
FIELDS = [["source", "string"], ["label", "int"], ["weight", "float"], ["tags", "json"],
          ["ok", "bool"], ["loss", "string"]]


def write(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    return path


def url_of(backend: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url"))


def stored_metadata(engine: Engine, job_id: str) -> list[Any]:
    jd = schema.job_documents
    with engine.connect() as connection:
        return list(connection.scalars(select(jd.c.metadata).where(jd.c.job_id == job_id)
                                       .order_by(jd.c.seq)))


def finished(url: str, corpus: Path) -> tuple[Engine, str]:
    from scheduler.local import run_local

    engine = ensure_schema(url)
    report = run_local(engine, str(corpus), JobSpec(model="toy-induction").validate(), "cpu")
    return engine, report.summary.job_id


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_metadata_streams_in_across_chunks(backend: str, request: pytest.FixtureRequest,
                                           tmp_path: Path) -> None:
    n_docs = INSERT_CHUNK + 5
    docs = [{"id": f"d{i}", "text": f"Document {i}.", "n": i, **({"part": "tail"} if i >
                                                                 INSERT_CHUNK else {})}
            for i in range(n_docs)]
    docs[INSERT_CHUNK + 2]["n"] = 0.25  # a number after the integers: the field is a float
    engine = ensure_schema(url_of(backend, request))
    job = create_job(engine, str(write(tmp_path / "big.jsonl", docs)), JobSpec())
    stored = stored_metadata(engine, job.job_id)
    assert stored == [{k: v for k, v in doc.items() if k not in ("id", "text")}
                      for doc in docs]
    assert result_layout(engine, job.job_id).fields == [("n", "float"), ("part", "string")]


def test_results_are_the_same_from_either_database(sqlite_url: str, postgres_url: str,
                                                   tmp_path: Path) -> None:
    corpus = write(tmp_path / "notes.jsonl", DOCS)
    outputs = {}
    for name, url in (("sqlite", sqlite_url), ("postgresql", postgres_url)):
        engine, job_id = finished(url, corpus)
        with engine.connect() as connection:
            assert connection.scalar(select(schema.jobs.c.metadata_fields)) in (
                FIELDS, json.dumps(FIELDS))
        assert stored_metadata(engine, job_id)[2] is None  # no fields: SQL NULL
        rows = list(result_rows(engine, job_id))
        write_results_parquet(engine, job_id, str(tmp_path / f"{name}.parquet"))  # COPY on PG
        outputs[name] = (rows, pq.read_table(tmp_path / f"{name}.parquet"))
    rows, table = outputs["sqlite"]
    assert [{k: row[k] for k in ("doc_id", "source", "label", "weight", "tags", "ok",
                                 "metadata.loss")} for row in rows] == [
        {"doc_id": "cat", "source": "wiki", "label": 1, "weight": 2.0, "tags": None,
         "ok": None, "metadata.loss": None},
        {"doc_id": "dog", "source": "news", "label": 2, "weight": 0.5,
         "tags": '["a", {"b": 1}]', "ok": True, "metadata.loss": None},
        {"doc_id": "bare", "source": None, "label": None, "weight": None, "tags": None,
         "ok": None, "metadata.loss": None},
        {"doc_id": "odd", "source": "", "label": None, "weight": None, "tags": None,
         "ok": False, "metadata.loss": "own"}]
    pg_rows, pg_table = outputs["postgresql"]
    metadata_columns = ["source", "label", "weight", "tags", "ok", "metadata.loss"]
    assert [{k: r[k] for k in metadata_columns} for r in pg_rows] == [
        {k: r[k] for k in metadata_columns} for r in rows]
    assert pg_table.schema == table.schema
    assert [str(table.schema.field(c).type) for c in metadata_columns] == [
        "string", "int64", "double", "string", "bool", "string"]
    assert pg_table.select(metadata_columns).to_pylist() == table.select(
        metadata_columns).to_pylist()
    assert table.column("loss").to_pylist() == [row["loss"] for row in rows]  # the metric


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_views_and_export_carry_metadata(backend: str, request: pytest.FixtureRequest,
                                         tmp_path: Path) -> None:
    engine, job_id = finished(url_of(backend, request), write(tmp_path / "n.jsonl", DOCS))
    field = ("metadata->>'source'" if backend == "postgresql"
             else "json_extract(metadata, '$.source')")
    with engine.connect() as connection:
        found = connection.execute(text(
            f"SELECT doc_id, {field} AS source, metadata FROM v_results "
            "WHERE job_id = :job ORDER BY seq"), {"job": job_id}).all()
    assert [(row.doc_id, row.source) for row in found] == [
        ("cat", "wiki"), ("dog", "news"), ("bare", None), ("odd", "")]
    decoded = [json.loads(row.metadata) if isinstance(row.metadata, str) else row.metadata
               for row in found]
    assert decoded[1] == {k: v for k, v in DOCS[1].items() if k not in ("id", "text")}
    export_job(engine, job_id, tmp_path / "export")
    exported = pq.read_table(tmp_path / "export" / "job_documents.parquet").to_pylist()
    assert [None if row["metadata"] is None else json.loads(row["metadata"])
            for row in exported] == decoded
    jobs = pq.read_table(tmp_path / "export" / "jobs.parquet").to_pylist()
    assert json.loads(jobs[0]["metadata_fields"]) == FIELDS
