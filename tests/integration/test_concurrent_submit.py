"""Concurrent `lensbatch submit` processes of overlapping corpora, against a real
PostgreSQL and a real Redis: every job complete, every text stored once, no deadlock."""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from lensbatch.jobspec import JobSpec
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from lensbatch.store.jobs import create_job
from tests.cli import LENSBATCH, lensbatch
from tests.faults import wait_for

pytestmark = pytest.mark.integration

# More documents than one insert chunk (lensbatch.store.jobs.INSERT_CHUNK), so that
# each submit holds the locks of one chunk while it inserts the next.
N_SHARED = 20000
N_SUBMITS = 4


def shared_texts() -> list[str]:
    return [f"Shared document {i}: induction heads copy what came before, {i * 7} times."
            for i in range(N_SHARED)]


def write_shuffled(path: Path, texts: list[str], seed: int) -> Path:
    """The shared texts in an order of this corpus's own, and two texts of its own."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    lines = [json.dumps({"id": f"s{i}", "text": texts[i]}) for i in order]
    lines += [json.dumps({"id": f"own{k}", "text": f"Only in corpus {seed}, text {k}."})
              for k in range(2)]
    path.write_text("\n".join(lines) + "\n")
    return path


def stored_texts(url: str, job_id: str) -> dict[str, str]:
    jd, docs = schema.job_documents, schema.documents
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(jd.c.doc_id, docs.c.text).join(docs, docs.c.id == jd.c.document_id)
                .where(jd.c.job_id == job_id)).all()
        return {doc_id: body for doc_id, body in rows}
    finally:
        engine.dispose()


def test_concurrent_overlapping_submits_do_not_deadlock(
    tmp_path: Path, redis_server, postgres_url: str  # type: ignore[no-untyped-def]
) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LENSBATCH_DATABASE_URL": postgres_url,
           "LENSBATCH_BROKER_URL": redis_server.url}
    assert lensbatch("db", "upgrade", env=env).returncode == 0
    texts = shared_texts()
    corpora = [write_shuffled(tmp_path / f"c{k}.jsonl", texts, seed=k) for k in range(N_SUBMITS)]
    procs = [subprocess.Popen([LENSBATCH, "submit", str(c), "--model", "toy-induction"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in corpora]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err and "Shared document" not in err
    job_ids = [out.strip() for out, _ in outs]
    assert len(set(job_ids)) == N_SUBMITS
    for k, job_id in enumerate(job_ids):
        stored = stored_texts(postgres_url, job_id)
        assert len(stored) == N_SHARED + 2
        assert all(stored[f"s{i}"] == texts[i] for i in range(N_SHARED))
        assert stored["own1"] == f"Only in corpus {k}, text 1."
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        n_docs = connection.scalar(select(text("count(*)")).select_from(schema.documents))
    engine.dispose()
    assert n_docs == N_SHARED + 2 * N_SUBMITS  # each text stored once


def test_deadlock_with_another_writer_is_retried(tmp_path: Path, postgres_url: str) -> None:
    """A real deadlock: another transaction holds one document the submit needs and then
    waits for one the submit holds. PostgreSQL aborts the submit's transaction (its
    deadlock check runs first); the submit retries and completes once the other commits."""
    import hashlib

    engine = ensure_schema(postgres_url)
    texts = ["first text of the pair", "second text of the pair"]
    # The submit inserts in content-hash order: `held` comes second, `taken` first.
    taken, held = sorted(texts, key=lambda t: hashlib.sha256(t.encode()).hexdigest())
    corpus = tmp_path / "pair.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    other = create_engine(postgres_url).connect()
    other.execute(text("SET deadlock_timeout = '60s'"))  # the submit detects it, not us
    row = {"content_hash": hashlib.sha256(held.encode()).hexdigest(), "text": held,
           "n_chars": len(held)}
    other.execute(schema.documents.insert().values(**row))  # uncommitted
    outcome: list[object] = []
    submit = threading.Thread(target=lambda: outcome.append(
        create_job(engine, str(corpus), JobSpec(model="toy-induction"))))
    submit.start()
    waiting = create_engine(postgres_url)

    def submit_waits() -> bool:
        with waiting.connect() as probe:
            return bool(probe.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND pid <> pg_backend_pid()")))

    wait_for(submit_waits, 60, "the submit waiting on the held document")
    # Now wait for `taken`, which the submit inserted: a deadlock, which aborts the submit.
    row = {"content_hash": hashlib.sha256(taken.encode()).hexdigest(), "text": taken,
           "n_chars": len(taken)}
    from sqlalchemy.dialects.postgresql import insert

    other.execute(insert(schema.documents).values(**row).on_conflict_do_nothing())
    other.commit()
    other.close()
    submit.join(timeout=120)
    waiting.dispose()
    assert not submit.is_alive()
    assert len(outcome) == 1, "the submit raised instead of retrying"
    job_id = outcome[0].job_id  # type: ignore[attr-defined]
    assert sorted(stored_texts(postgres_url, job_id).values()) == sorted(texts)
