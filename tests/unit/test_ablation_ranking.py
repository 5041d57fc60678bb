"""`ablations`' ranking from SQL, on the synthetic 144-head sweep of bench row r: every
head's paired difference and interval is what numpy works out from the per-document
rows, on the documents both jobs have (a job still running is paired on its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, select

from bench.ablations import N_HEADS, N_LAYERS, SWEEP_ID, fill_sweep
from lensbatch.bootstrap import normal_interval
from lensbatch.store import schema
from lensbatch.store.db import make_engine
from scheduler.ablation_view import gather, rows


def test_ranking_from_sql_is_the_per_document_difference(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    fill_sweep(url, 40)
    engine = make_engine(url)
    r = schema.results
    with engine.begin() as connection:  # one job has only 25 of its documents yet
        connection.execute(delete(r).where(r.c.job_id == "job007", r.c.seq >= 25))
        per_job: dict[str, dict[int, Any]] = {}
        for row in connection.execute(select(r.c.job_id, r.c.seq, r.c.nll_sum,
                                             r.c.n_predictions, r.c.n_correct)):
            per_job.setdefault(row.job_id, {})[row.seq] = row
    found = gather(engine, SWEEP_ID)
    engine.dispose()
    assert len(found.effects) == N_LAYERS * N_HEADS and found.baseline.job_id == "job000"
    losses = [float(e.differences["loss"].value or 0.0) for e in found.effects]
    assert None not in [e.differences["loss"].value for e in found.effects]
    assert losses == sorted(losses, reverse=True)  # ranked by loss increase
    base = per_job["job000"]
    for effect in found.effects:
        seqs = sorted(per_job[effect.job_id])
        assert effect.documents == len(seqs) == (25 if effect.job_id == "job007" else 40)
        for rate, column in (("loss", "nll_sum"), ("accuracy", "n_correct")):
            d = np.array([getattr(per_job[effect.job_id][s], column) - getattr(base[s], column)
                          for s in seqs], dtype=np.float64)
            b = np.array([base[s].n_predictions for s in seqs], dtype=np.float64)
            expected = normal_interval(len(seqs), (d.sum(), b.sum()),
                                       ((d * d).sum(), (d * b).sum(), (b * b).sum()))
            got = effect.differences[rate]
            assert (got.value, got.low, got.high) == pytest.approx(
                (expected.value, expected.low, expected.high), rel=1e-9, abs=1e-12)
    listed = rows(found)
    assert [row["rank"] for row in listed] == list(range(1, N_LAYERS * N_HEADS + 1))
    assert {row["head"] for row in listed} == {f"{layer}.{head}" for layer in range(N_LAYERS)
                                               for head in range(N_HEADS)}
