"""Row r: ranking an ablation sweep's heads from SQL, as `lensbatch ablations SWEEP`
does: GPT-2 small's shape (12 layers x 12 heads: 144 ablated jobs and the unablated
one, one sweep over the same documents), with synthetic per-document results."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.intervals import result_rows
from bench.timing import median

N_LAYERS = N_HEADS = 12
SWEEP_ID = "bench-ablations"


def fill_sweep(url: str, n_docs: int) -> None:
    """The unablated job and one job per head over n_docs shared documents: per-document
    losses of the ablated jobs are the baseline's plus a head-dependent shift."""
    from lensbatch.jobspec import JobSpec
    from lensbatch.store import schema
    from lensbatch.store.db import ensure_schema

    engine = ensure_schema(url)
    rng = np.random.default_rng(0)
    predictions = rng.integers(5, 2000, n_docs)
    base_nll = predictions * rng.uniform(2.0, 5.0, n_docs)
    heads = [()] + [((layer, head),) for layer in range(N_LAYERS) for head in range(N_HEADS)]
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(schema.documents.insert(), [
            {"id": i + 1, "content_hash": f"{i:064x}", "text": "x", "n_chars": 1}
            for i in range(n_docs)])
        for index, ablate in enumerate(heads):
            job_id = f"job{index:03d}"
            spec = JobSpec(model="gpt2-small-random", ablate=ablate)
            connection.execute(schema.jobs.insert().values(
                id=job_id, model=spec.model, settings=spec.to_json(), status="done",
                corpus="bench", n_documents=n_docs, n_tasks=1, created_at=now,
                sweep_id=SWEEP_ID, sweep_index=index))
            connection.execute(schema.job_documents.insert(), [
                {"job_id": job_id, "seq": i, "doc_id": f"d{i}", "document_id": i + 1,
                 "source": "bench"} for i in range(n_docs)])
            shift = rng.normal(0.01 * index, 0.05, n_docs) if ablate else np.zeros(n_docs)
            nll = base_nll + predictions * shift
            connection.execute(schema.results.insert(),
                               result_rows(job_id, predictions, nll, now))
    engine.dispose()


def sqlite_url(work: Path, n_docs: int) -> str:
    return f"sqlite:///{work / f'ablations-{n_docs}.db'}"


def fresh_postgres_database(server_url: str, n_docs: int) -> str:
    """A new, empty database on the PostgreSQL server of `server_url`, for one size."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"ablations_{n_docs}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def ranking_seconds(url: str, n_docs: int, reps: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds of `ablations`' gather (the SQL sums and the
    ranking) over 144 heads, in the empty database `url`. SQLite runs in this process,
    so on a busy machine its CPU time is what the ranking costs, the wall-clock time
    what it took; PostgreSQL's CPU time is the server's, not counted here."""
    from lensbatch.store.db import make_engine
    from scheduler.ablation_view import gather

    fill_sweep(url, n_docs)
    engine = make_engine(url)
    wall, cpu = [], []
    for _ in range(reps):
        started, started_cpu = time.perf_counter(), time.process_time()
        found = gather(engine, SWEEP_ID)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        assert len(found.effects) == N_LAYERS * N_HEADS
    engine.dispose()
    return median(wall), median(cpu)
