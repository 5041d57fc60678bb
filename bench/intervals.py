"""Row i: the 95% intervals of a large job, as `status`, `run` and the report compute them,
and a comparison of two such jobs: reading the per-document sums from SQLite, and the
bootstrap (1,000 resamples over the documents)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.timing import median


@dataclass(frozen=True)
class IntervalTimes:
    n_docs: int
    read_s: list[float]  # document_sums of one job
    one_job_s: list[float]  # corpus_intervals of one job's rows
    two_jobs_s: list[float]  # compare of two jobs over the same documents


def result_rows(job_id: str, predictions: np.ndarray, nll: np.ndarray,
                now: datetime) -> list[dict[str, object]]:
    """Synthetic results rows: each document's predictions and summed loss as given, the
    other counts fixed fractions of its predictions."""
    return [{"job_id": job_id, "seq": i, "n_tokens": int(p) + 1, "n_predictions": int(p),
             "nll_sum": float(v), "loss": float(v) / int(p), "n_correct": int(p) // 3,
             "accuracy": (int(p) // 3) / int(p), "induction_candidates": int(p) // 10,
             "induction_hits": int(p) // 20, "induction_novel_hits": 0, "n_windows": 1,
             "worker": "bench", "created_at": now}
            for i, (p, v) in enumerate(zip(predictions, nll, strict=True))]


def fill_jobs(url: str, n_docs: int, job_ids: tuple[str, ...]) -> None:
    """Jobs over the same n_docs documents, with a results row each (synthetic numbers)."""
    from lensbatch.jobspec import JobSpec
    from lensbatch.store import schema
    from lensbatch.store.db import ensure_schema

    engine = ensure_schema(url)
    rng = np.random.default_rng(0)
    predictions = rng.integers(5, 2000, n_docs)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(schema.documents.insert(), [
            {"id": i + 1, "content_hash": f"{i:064x}", "text": "x", "n_chars": 1}
            for i in range(n_docs)])
        for job_id in job_ids:
            connection.execute(schema.jobs.insert().values(
                id=job_id, model="m", settings=JobSpec().to_json(), status="done",
                corpus="bench", n_documents=n_docs, n_tasks=1, created_at=now))
            connection.execute(schema.job_documents.insert(), [
                {"job_id": job_id, "seq": i, "doc_id": f"d{i}", "document_id": i + 1,
                 "source": "bench"} for i in range(n_docs)])
            nll = predictions * rng.uniform(2.0, 5.0, n_docs)
            connection.execute(schema.results.insert(),
                               result_rows(job_id, predictions, nll, now))
    engine.dispose()


def interval_times(work: Path, n_docs: int, reps: int) -> IntervalTimes:
    from lensbatch.compare import compare, corpus_intervals, job_documents
    from lensbatch.store.db import make_engine
    from lensbatch.store.sweeps import document_sums

    url = f"sqlite:///{work / 'intervals.db'}"
    fill_jobs(url, n_docs, ("a", "b"))
    engine = make_engine(url)
    times = IntervalTimes(n_docs, [], [], [])
    for _ in range(reps):
        started = time.perf_counter()
        rows = [document_sums(engine, job) for job in ("a", "b")]
        times.read_s.append((time.perf_counter() - started) / 2)
        started = time.perf_counter()
        corpus_intervals(rows[0])
        times.one_job_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        compare([job_documents(job, "m", r) for job, r in zip("ab", rows, strict=True)])
        times.two_jobs_s.append(time.perf_counter() - started)
    return times


def summary(times: IntervalTimes) -> dict[str, float]:
    return {"read": median(times.read_s), "one_job": median(times.one_job_s),
            "two_jobs": median(times.two_jobs_s)}
