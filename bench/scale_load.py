"""The synthetic job of `python -m bench.scale`: bulk-loaded rows of realistic sizes.

Its documents (short generated texts, the sentences of bench/corpus.py's generator) and
results are generated inside PostgreSQL (INSERT ... SELECT over generate_series,
seeded), its induction hits are COPYed from Python in the packed form the workers
write, and its counters are summed from those rows, as the workers' transactions would
have left them. Foreign keys are not checked while loading (session_replication_role:
the rows are consistent by construction). Other jobs (for `jobs`) get a jobs row and
sixteen counter shards each. `lensbatch submit` itself is timed on a corpus of its own.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator

from sqlalchemy import Connection, Engine, text

from bench.corpus import WORDS
from lensbatch.jobspec import JobSpec
from lensbatch.metrics import HEAD_SCORE_NAMES, MOMENTS, moment_name
from lensbatch.store.packing import pack_bits, pack_positions

# Each document: "Document <i>. " and 48 characters of words, about 60 to 70 in all.
DOCUMENTS = """
INSERT INTO documents (content_hash, text, n_chars)
SELECT encode(sha256(convert_to(t, 'UTF8')), 'hex'), t, length(t)
FROM (SELECT 'Document ' || i || '. ' || substr(:words, 1 + (i * 37) % 397, 48) AS t
      FROM generate_series(0, :n - 1) AS i) texts
"""
JOB_DOCUMENTS = """
INSERT INTO job_documents (job_id, seq, doc_id, document_id, source)
SELECT :job, row_number() OVER (ORDER BY id) - 1, (row_number() OVER (ORDER BY id) - 1)::text,
       id, 'corpus.jsonl'
FROM documents
"""

# Per-document values, drawn in SQL from random() after setseed: short documents of
# 12 to 23 tokens (what the generated corpus holds), loss 2-5 nats, accuracy 20-50%.
RESULTS = """
INSERT INTO results (job_id, seq, n_tokens, n_predictions, nll_sum, loss, n_correct, accuracy,
                     induction_candidates, induction_hits, induction_novel_hits, n_windows,
                     worker, created_at)
SELECT :job, seq, t, t - 1, (t - 1) * l, l, c, CAST(c AS FLOAT) / (t - 1), k, h, h / 3, 1,
       'gpu-node-' || (seq % 64) || ':' || (4000 + seq % 8), now()
FROM (SELECT seq, t, l, floor((t - 1) * a)::int AS c, k, least(k, floor(k * a * 2)::int) AS h
      FROM (SELECT seq, 12 + floor(random() * 12)::int AS t, 2 + 3 * random() AS l,
                   0.2 + 0.3 * random() AS a, floor(random() * 4)::int AS k
            FROM generate_series(0, :n - 1) AS seq) drawn) derived
"""
PROGRESS = f"""
INSERT INTO job_progress (job_id, shard, documents_done, n_tokens, n_predictions, nll_sum,
                          n_correct, induction_candidates, induction_hits,
                          induction_novel_hits, n_windows,
                          {", ".join(moment_name(pair) for pair in MOMENTS)})
SELECT job_id, 0, count(*), sum(n_tokens), sum(n_predictions), sum(nll_sum), sum(n_correct),
       sum(induction_candidates), sum(induction_hits), sum(induction_novel_hits),
       sum(n_windows), {", ".join(f"sum(CAST({a} AS FLOAT) * {b})" for a, b in MOMENTS)}
FROM results WHERE job_id = :job GROUP BY job_id
"""
COPY_HITS = "COPY induction_hit_tokens (job_id, seq, positions, novel) FROM STDIN"
N_LAYERS = N_HEADS = 12  # GPT-2 small


def bulk(connection: Connection) -> None:
    """Load without checking foreign keys (the rows are consistent by construction)."""
    connection.execute(text("SET LOCAL session_replication_role = replica"))


def load_corpus(engine: Engine, job_id: str, n_docs: int) -> None:
    """A finished job of n_docs documents, stored as `submit` stores them, into an
    empty database."""
    spec = JobSpec(model="gpt2-small-random")
    with engine.begin() as connection:
        bulk(connection)
        connection.execute(text(
            "INSERT INTO jobs (id, model, settings, status, corpus, n_documents, n_tasks, "
            "n_chars, created_at) VALUES (:job, :model, :settings, 'queued', 'corpus.jsonl', "
            ":n, :tasks, 0, now())"),
            {"job": job_id, "model": spec.model, "settings": json.dumps(spec.to_json()),
             "n": n_docs, "tasks": n_docs // 1000 + 1})
        connection.execute(text(DOCUMENTS), {"n": n_docs, "words": " ".join(WORDS) * 3})
        connection.execute(text(JOB_DOCUMENTS), {"job": job_id})
        connection.execute(text("UPDATE jobs SET n_chars = (SELECT sum(n_chars) FROM documents)"
                                " WHERE id = :job"), {"job": job_id})


def load_results(engine: Engine, job_id: str, n_docs: int) -> float:
    """Results rows for every document of the job, and its progress counters; seconds."""
    started = time.perf_counter()
    with engine.begin() as connection:
        bulk(connection)
        connection.execute(text("SELECT setseed(0.42)"))
        connection.execute(text(RESULTS), {"job": job_id, "n": n_docs})
        connection.execute(text(PROGRESS), {"job": job_id})
        connection.execute(text("UPDATE jobs SET status = 'done', started_at = now(), "
                                "finished_at = now() WHERE id = :job"), {"job": job_id})
    return time.perf_counter() - started


def hit_rows(job_id: str, n_docs: int, seed: int = 0) -> Iterator[tuple[object, ...]]:
    """Packed hits for about three in five documents, one to three each."""
    rng = random.Random(seed)
    for seq in range(n_docs):
        n_hits = rng.choice((0, 0, 1, 2, 3))
        if n_hits:
            positions = sorted(rng.sample(range(4, 20), n_hits))
            yield (job_id, seq, pack_positions(positions),
                   pack_bits([rng.random() < 0.3 for _ in positions]))


def load_hits(engine: Engine, job_id: str, n_docs: int) -> tuple[int, float]:
    """COPY the job's packed hits; (rows, seconds)."""
    started = time.perf_counter()
    count = 0
    with engine.begin() as connection:
        bulk(connection)
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(COPY_HITS) as copy:  # type: ignore[union-attr]
            for row in hit_rows(job_id, n_docs):
                copy.write_row(row)
                count += 1
    return count, time.perf_counter() - started


def load_head_totals(engine: Engine, job_id: str, n_docs: int) -> None:
    """GPT-2 small's 144 heads, summed over n_docs documents, in one shard."""
    rng = random.Random(1)
    columns = ", ".join(f"{name}_sum, {name}_count" for name in HEAD_SCORE_NAMES)
    values = ", ".join(f":{name}_sum, :n" for name in HEAD_SCORE_NAMES)
    rows = [{"job": job_id, "layer": layer, "head": head, "n": n_docs,
             **{f"{name}_sum": rng.random() * n_docs for name in HEAD_SCORE_NAMES}}
            for layer in range(N_LAYERS) for head in range(N_HEADS)]
    with engine.begin() as connection:
        connection.execute(text(
            f"INSERT INTO head_totals (job_id, shard, layer, head, n_documents, {columns}) "
            f"VALUES (:job, 0, :layer, :head, :n, {values})"), rows)


def load_other_jobs(engine: Engine, count: int) -> None:
    """`count` finished jobs of 1,000 documents, each with sixteen counter shards."""
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO jobs (id, model, settings, status, corpus, n_documents, n_tasks, "
            "n_chars, created_at, finished_at) "
            "SELECT 'other' || i, 'gpt2-small', '{}', 'done', 'corpus.jsonl', 1000, 4, 60000, "
            "now() - i * interval '1 minute', now() FROM generate_series(1, :n) AS i"),
            {"n": count})
        connection.execute(text(
            "INSERT INTO job_progress SELECT 'other' || i, s, 62, 1000, 938, 3000.0, 300, "
            "100, 40, 10, 63 FROM generate_series(1, :n) AS i, generate_series(0, 15) AS s"),
            {"n": count})
