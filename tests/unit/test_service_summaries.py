"""What a task stores besides `results`, in the same transaction, and only once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select, update

from lensbatch.jobspec import JobSpec
from lensbatch.settings import Settings
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from lensbatch.store.export import UNPACKED
from lensbatch.store.head_queries import head_rows, job_probe
from lensbatch.store.jobs import create_job
from scheduler.report.text import Hit
from worker.engine import toy_induction
from worker.service import Runtime, process_task

TABLES = (schema.results, schema.head_scores, schema.activation_stats,
          schema.induction_hit_tokens, schema.probes, schema.probe_heads)
TEXTS = ["The lamp is lit, the lamp is lit, all is well at the lighthouse.",
         "Hello TransformerLens!",
         "Keepers keep logs. Keepers keep logs. Keepers keep logs."]


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of TABLES but its timestamp; the packed per-document tables in the long
    form `export` writes (one row per document, layer and head; one per hit)."""
    with engine.connect() as connection:
        found = {}
        for t in TABLES:
            rows = connection.execute(select(*(c for c in t.columns if c.name != "created_at")))
            unpack = UNPACKED[t.name][1] if t.name in UNPACKED else lambda row: [tuple(row)]
            found[t.name] = sorted(tuple(r) for row in rows for r in unpack(row))
        return found


def hit_tokens(engine: Engine, job_id: str, seq: int) -> list[Hit]:
    """A document's stored hits with their token text, as the model's tokenizer decodes
    the token at each position (BOS is position 0)."""
    from lensbatch.store.report_data import document_text, hit_positions
    from worker.engine.tokenizer import load_tokenizer

    tokenizer = load_tokenizer("toy-induction", Settings.from_env().cache_dir)
    ids = tokenizer(document_text(engine, job_id, seq), add_special_tokens=False)["input_ids"]
    return [Hit(position, tokenizer.decode([ids[position - 1]]), novel)
            for position, novel in hit_positions(engine, job_id, seq)]


@pytest.fixture()
def job(tmp_path: Path, sqlite_url: str) -> tuple[Engine, str, list[list[int]]]:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                              for i, t in enumerate(TEXTS)))
    engine = ensure_schema(sqlite_url)
    spec = JobSpec(model="toy-induction", task_tokens=20,
                   activations=("pattern", "resid_post"), stats=("mean", "norm"),
                   head_scores="document")
    planned = create_job(engine, str(corpus), spec)
    assert len(planned.tasks) > 1
    return engine, planned.job_id, list(planned.tasks)


def test_tasks_store_summaries_hits_and_one_probe(job) -> None:  # type: ignore[no-untyped-def]
    engine, job_id, tasks = job
    runtime = Runtime(device="cpu")
    for seqs in tasks:
        done = process_task(engine, job_id, seqs, runtime)
        with engine.connect() as connection:
            tokens = connection.scalar(select(func.sum(schema.results.c.n_tokens)).where(
                schema.results.c.seq.in_(seqs)))
        assert (done.written, done.tokens) == (len(seqs), tokens)
    rows = snapshot(engine)
    n_docs, n_layers, n_heads = len(TEXTS), 2, 4
    assert len(rows["head_scores"]) == n_docs * n_layers * n_heads
    # pattern: per layer and head; resid_post: per layer, no head (-1); two statistics.
    assert len(rows["activation_stats"]) == n_docs * 2 * (n_layers * n_heads + n_layers)
    with engine.connect() as connection:
        resid = connection.execute(select(schema.activation_stats).where(
            schema.activation_stats.c.hook == "blocks.1.hook_resid_post")).all()
    assert {(r.layer, r.head) for r in resid} == {(1, schema.NO_HEAD)}
    hits = hit_tokens(engine, job_id, 2)
    assert " keep" in [h.token for h in hits] and any(h.novel for h in hits)
    assert len(rows["probes"]) == 1 and len(rows["probe_heads"]) == n_layers * n_heads
    probe = job_probe(engine, job_id)
    assert probe is not None
    first, second = probe.first_copy_loss, probe.second_copy_loss
    assert first is not None and second is not None and second < 0.01 < 10 < first
    by_head = {(r["layer"], r["head"]): r for r in head_rows(engine, job_id)}
    wired = by_head[toy_induction.INDUCTION_HEAD]
    assert wired["probe_induction_score"] > 0.99 and wired["n_documents"] == n_docs
    assert by_head[toy_induction.PREV_TOKEN_HEAD]["prev_token_score"] > 0.99


def test_a_redelivered_task_changes_nothing(job) -> None:  # type: ignore[no-untyped-def]
    engine, job_id, tasks = job
    runtime = Runtime(device="cpu")
    for seqs in tasks:
        process_task(engine, job_id, seqs, runtime)
    before = snapshot(engine)
    assert process_task(engine, job_id, tasks[0], runtime).written == 0
    # Even re-evaluated (its result lost), a document's rows are replaced, not added.
    with engine.begin() as connection:
        connection.execute(delete(schema.results).where(schema.results.c.seq == tasks[0][0]))
        connection.execute(update(schema.jobs).values(status="running"))
    assert process_task(engine, job_id, tasks[0], runtime).written == 1
    assert snapshot(engine) == before
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(schema.probes)) == 1


def test_a_hook_the_model_lacks_fails_the_job(tmp_path: Path, sqlite_url: str) -> None:
    """Hub models are only checked by form at submit time; the worker checks the rest."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    engine = ensure_schema(sqlite_url)
    spec = JobSpec(model="toy-induction", activations=("mlp_post",), stats=("mean",))
    planned = create_job(engine, str(corpus), spec)
    done = process_task(engine, planned.job_id, planned.tasks[0], Runtime(device="cpu"))
    assert done.written == 0
    with engine.connect() as connection:
        job = connection.execute(select(schema.jobs)).one()
        assert connection.scalar(select(func.count()).select_from(schema.results)) == 0
    assert job.status == "failed" and "unknown activation 'mlp_post'" in job.error


def test_a_behaviour_only_job_keeps_no_head_summaries(tmp_path: Path, sqlite_url: str) -> None:
    """--no-heads: every result and induction hit, no per-head score and no probe."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    engine = ensure_schema(sqlite_url)
    planned = create_job(engine, str(corpus),
                         JobSpec(model="toy-induction", heads=False, windows="disjoint"))
    for seqs in planned.tasks:
        process_task(engine, planned.job_id, seqs, Runtime(device="cpu"))
    rows = snapshot(engine)
    assert len(rows["results"]) == len(TEXTS) and rows["induction_hit_tokens"]
    assert rows["head_scores"] == rows["probes"] == rows["probe_heads"] == []
    assert job_probe(engine, planned.job_id) is None
