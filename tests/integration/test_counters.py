"""A job's counters on a real PostgreSQL: exactly once under redelivery and under the
same task written twice at once, and the same answers as SQL's AVG over the documents."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from lensbatch.evaluation import DocEvaluation, DocMetrics, InductionHit
from lensbatch.jobspec import JobSpec
from lensbatch.metrics import HEAD_SCORE_NAMES, MOMENTS, moment_name
from lensbatch.store.attempts import Claimer
from lensbatch.store.db import ensure_schema
from lensbatch.store.head_queries import document_head_rows, head_rows
from lensbatch.store.jobs import create_job
from lensbatch.store.queries import job_moments, job_summary
from lensbatch.store.tasks import Outcome, Written, write_task
from tests.cli import lensbatch
from tests.unit.test_ingest import DUPLICATES, check_duplicate_is_one_line

pytestmark = pytest.mark.integration
N_LAYERS, N_HEADS, N_DOCS = 3, 2, 12


def evaluation(seq: int) -> DocEvaluation:
    """Deterministic numbers; induction_score is null for every third document."""
    n = 10 + seq
    heads = {name: [[None if name == "induction_score" and seq % 3 == 0
                     else math.sin(seq + 7 * layer + head + k) ** 2
                     for head in range(N_HEADS)] for layer in range(N_LAYERS)]
             for k, name in enumerate(HEAD_SCORE_NAMES)}
    metrics = DocMetrics(n, n - 1, 2.5 * (n - 1), 2.5, seq, seq / (n - 1), 4, 2, 1, 1)
    return DocEvaluation(metrics, heads, {}, [InductionHit(3, 0, True), InductionHit(5, 0, False)])


@pytest.fixture()
def job(postgres_url: str, tmp_path: Path) -> tuple[Engine, str]:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"Document {i}."}) + "\n"
                              for i in range(N_DOCS)))
    engine = ensure_schema(postgres_url)
    return engine, create_job(engine, str(corpus), JobSpec(head_scores="document")).job_id


def written(seqs: range) -> Written:
    card = {"name": "m", "source": "builtin", "config": {}, "weight_shapes": {}}
    return Written(Outcome([(seq, evaluation(seq)) for seq in seqs], []), None, "m", card,
                   per_document_heads=True)


def expected_means() -> dict[tuple[int, int], dict[str, float | None]]:
    """Per head, each score's mean over the documents where it is not null."""
    means = {}
    for layer in range(N_LAYERS):
        for head in range(N_HEADS):
            values = {name: [v for seq in range(N_DOCS)
                             if (v := evaluation(seq).heads[name][layer][head]) is not None]
                      for name in HEAD_SCORE_NAMES}
            means[(layer, head)] = {name: (math.fsum(v) / len(v) if v else None)
                                    for name, v in values.items()}
    return means


def check_counted_once(engine: Engine, job_id: str) -> None:
    summary = job_summary(engine, job_id)
    assert summary.n_done == N_DOCS and summary.status == "done"
    assert summary.totals["n_tokens"] == sum(10 + seq for seq in range(N_DOCS))
    assert summary.totals["induction_hits"] == 2 * N_DOCS
    moments = job_moments(engine, job_id)  # what a large job's intervals come from
    for a, b in MOMENTS:
        docs = [evaluation(seq).metrics for seq in range(N_DOCS)]
        products = [float(getattr(doc, a)) * getattr(doc, b) for doc in docs]
        assert moments[moment_name((a, b))] == pytest.approx(math.fsum(products), rel=1e-12)
    means = expected_means()
    rows = head_rows(engine, job_id)
    assert len(rows) == N_LAYERS * N_HEADS
    for row in rows:
        assert row["n_documents"] == N_DOCS
        for name in HEAD_SCORE_NAMES:
            assert row[name] == pytest.approx(means[(row["layer"], row["head"])][name],
                                              rel=1e-12)


def test_a_task_written_twice_counts_once(job: tuple[Engine, str]) -> None:
    engine, job_id = job
    for seqs in (range(0, 8), range(0, 8), range(4, 12), range(0, 12)):  # redeliveries
        write_task(engine, job_id, written(seqs), Claimer("w", 3))
    check_counted_once(engine, job_id)


def test_the_same_task_written_at_once_counts_once(job: tuple[Engine, str],
                                                   postgres_url: str) -> None:
    """Two writers of the same documents are held at the same row lock (an open
    transaction has inserted one of their results) and released together."""
    engine, job_id = job
    blocker = create_engine(postgres_url)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            write_task(engine, job_id, written(range(N_DOCS)), Claimer("w", 3))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with blocker.connect() as connection:
        connection.execute(text(
            "INSERT INTO results SELECT id, 0, 1, 0, 0, NULL, 0, NULL, 0, 0, 0, 1, 'x', "
            "now() FROM jobs WHERE id = :job"), {"job": job_id})
        threads = [threading.Thread(target=write) for _ in range(2)]
        for thread in threads:
            thread.start()

        def waiting() -> int:
            with engine.connect() as probe:
                return int(probe.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")))

        from tests.faults import wait_for

        wait_for(lambda: waiting() == 2, 30, "both writers waiting on the open insert")
        connection.rollback()
    for thread in threads:
        thread.join(60)
    blocker.dispose()
    assert errors == []
    check_counted_once(engine, job_id)


def test_per_document_scores_average_to_the_heads(job: tuple[Engine, str]) -> None:
    """`heads` (from the sums) is the mean of `heads --per-document` (float32 each)."""
    engine, job_id = job
    write_task(engine, job_id, written(range(N_DOCS)), Claimer("w", 3))
    per_document = list(document_head_rows(engine, job_id))
    assert len(per_document) == N_DOCS * N_LAYERS * N_HEADS
    for row in head_rows(engine, job_id):
        for name in HEAD_SCORE_NAMES:
            values = [r[name] for r in per_document if (r["layer"], r["head"]) ==
                      (row["layer"], row["head"]) and r[name] is not None]
            assert row[name] == pytest.approx(sum(values) / len(values), rel=1e-6)


@pytest.mark.parametrize("duplicate", DUPLICATES, ids=["same-chunk", "across-chunks"])
def test_duplicate_id_on_postgresql(duplicate: tuple[int, int], tmp_path: Path,
                                    postgres_url: str) -> None:
    """The COPY path: the unique constraint finds it, the line is named, nothing stays."""
    check_duplicate_is_one_line(postgres_url, duplicate, tmp_path)


def test_results_and_per_document_heads_stream_from_postgresql(
        job: tuple[Engine, str], postgres_url: str, tmp_path: Path) -> None:
    """Through a server-side cursor: Parquet and JSON lines hold the same rows, in corpus
    order, and `heads --per-document` one row per document and head."""
    import pandas as pd

    engine, job_id = job
    write_task(engine, job_id, written(range(N_DOCS)), Claimer("w", 3))
    env = {"LENSBATCH_DATABASE_URL": postgres_url}
    out = lensbatch("results", job_id, "--format", "parquet", "-o", str(tmp_path / "r.parquet"),
                    env=env)
    assert out.returncode == 0, out.stderr
    jsonl = [json.loads(line) for line in
             lensbatch("results", job_id, "--format", "jsonl", env=env).stdout.splitlines()]
    frame = pd.read_parquet(tmp_path / "r.parquet")
    assert frame.to_dict("records") == jsonl and len(jsonl) == N_DOCS
    assert [r["n_tokens"] for r in jsonl] == [10 + seq for seq in range(N_DOCS)]
    heads = lensbatch("heads", job_id, "--per-document", "--format", "csv", env=env)
    assert heads.returncode == 0, heads.stderr
    assert len(heads.stdout.splitlines()) == 1 + N_DOCS * N_LAYERS * N_HEADS
