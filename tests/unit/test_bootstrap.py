"""The bootstrap and the comparison core: seeded, over documents, a ratio of sums, with
the coverage a 95% interval should have."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from lensbatch import bootstrap
from lensbatch.bootstrap import Interval, interval, normal_interval, resampled_sums
from lensbatch.compare import (
    aligned,
    compare,
    corpus_intervals,
    counter_intervals,
    document_differences,
    head_differences,
    job_documents,
)
from lensbatch.metrics import MOMENTS, moment_name


def doc_rows(nll: list[float], predictions: list[int], correct: list[int] | None = None,
             document_ids: list[int] | None = None) -> list[SimpleNamespace]:
    """Rows as lensbatch/store/sweeps.py's document_sums returns them."""
    ids = document_ids or list(range(len(nll)))
    hits = correct or [0] * len(nll)
    return [SimpleNamespace(seq=i, document_id=ids[i], doc_id=f"d{ids[i]}", nll_sum=nll[i],
                            n_predictions=predictions[i], n_correct=hits[i],
                            induction_hits=hits[i], induction_candidates=predictions[i],
                            n_tokens=predictions[i] + 1, induction_novel_hits=0, n_windows=1)
            for i in range(len(nll))]


def random_rows(seed: int, n: int = 40) -> list[SimpleNamespace]:
    rng = np.random.default_rng(seed)
    predictions = rng.integers(5, 400, n).tolist()
    nll = [float(p * rng.uniform(2, 5)) for p in predictions]
    correct = [int(p * rng.uniform(0.1, 0.5)) for p in predictions]
    return doc_rows(nll, predictions, correct)


def test_same_documents_and_seed_give_the_same_interval() -> None:
    rows = random_rows(1)
    first, again = corpus_intervals(rows), corpus_intervals(rows)
    assert first == again
    loss = first["loss"]
    assert loss.low is not None and loss.high is not None
    assert loss.low < loss.value < loss.high  # type: ignore[operator]
    assert corpus_intervals(rows, seed=1)["loss"] != loss  # the seed is what fixes it


def test_value_is_the_ratio_of_sums_not_the_mean_of_ratios() -> None:
    # one long easy document and two short hard ones
    rows = doc_rows([100.0, 50.0, 60.0], [100, 10, 10])
    loss = corpus_intervals(rows)["loss"]
    assert loss.value == pytest.approx(210 / 120)
    assert loss.value != pytest.approx(np.mean([1.0, 5.0, 6.0]))
    # every resample is a ratio of sums: it lies between the smallest and largest
    # per-document rate
    assert 1.0 <= loss.low <= loss.high <= 6.0  # type: ignore[operator]


def test_documents_with_equal_rates_give_a_degenerate_interval() -> None:
    loss = corpus_intervals(doc_rows([20.0, 40.0, 4.0], [10, 20, 2]))["loss"]
    assert loss.low == pytest.approx(2.0) and loss.high == pytest.approx(2.0)


def test_draws_do_not_depend_on_how_they_are_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    column = np.arange(50, dtype=np.float64)
    whole = resampled_sums({"x": column}, samples=200)["x"]
    monkeypatch.setattr(bootstrap, "CHUNK_ELEMENTS", 50 * 7)  # 7 resamples at a time
    assert np.array_equal(resampled_sums({"x": column}, samples=200)["x"], whole)


def test_a_column_sums_the_same_whatever_is_resampled_with_it() -> None:
    """So `status` (one job) and `compare` (several) give a job the same interval."""
    rng = np.random.default_rng(3)
    a, b = rng.random(777) * 1000, rng.random(777)
    alone = resampled_sums({"a": a})["a"]
    together = resampled_sums({"b": b, "x": 2 * b, "a": a, "again": a.copy()})
    assert np.array_equal(alone, together["a"]) and np.array_equal(alone, together["again"])


def test_intervals_cover_the_true_rate_about_95_percent_of_the_time() -> None:
    """Corpora drawn from a known population: the true token-weighted loss is 3.0."""
    rng = np.random.default_rng(7)
    covered = 0
    trials = 200
    for _ in range(trials):
        predictions = rng.integers(10, 200, 60)
        nll = [float(rng.normal(3.0, 1.0) * p) for p in predictions]
        loss = corpus_intervals(doc_rows(nll, predictions.tolist()), samples=400)["loss"]
        covered += loss.low <= 3.0 <= loss.high  # type: ignore[operator]
    assert 0.88 <= covered / trials <= 0.99


def test_paired_difference_of_a_job_with_itself_is_exactly_zero() -> None:
    rows = random_rows(3)
    comparison = compare([job_documents("a", "m", rows), job_documents("b", "m", rows)])
    assert comparison.differences[0]["loss"] == Interval(0.0, 0.0, 0.0)
    assert not comparison.differences[0]["loss"].excludes_zero
    assert comparison.rates[0] == comparison.rates[1] == corpus_intervals(rows)


def test_paired_difference_sees_a_small_shift_that_unpaired_intervals_miss() -> None:
    rows = random_rows(4)
    shifted = [SimpleNamespace(**{**vars(r), "nll_sum": r.nll_sum + 0.02 * r.n_predictions})
               for r in rows]
    comparison = compare([job_documents("a", "m", rows), job_documents("b", "m", shifted)])
    a, b = comparison.rates
    assert a["loss"].high is not None and b["loss"].low is not None
    assert a["loss"].high > b["loss"].low  # the two intervals overlap...
    diff = comparison.differences[0]["loss"]
    assert diff.value == pytest.approx(0.02)
    assert diff.excludes_zero and diff.low == pytest.approx(0.02)  # ...the pairing does not


def test_jobs_are_compared_on_the_documents_they_share() -> None:
    a = job_documents("a", "m", doc_rows([1.0, 2.0, 3.0, 4.0], [1, 1, 1, 1],
                                         document_ids=[10, 11, 12, 10]))
    b = job_documents("b", "m", doc_rows([5.0, 6.0, 7.0], [1, 1, 1],
                                         document_ids=[12, 10, 13]))
    first, second = aligned([a, b])
    # text 10 occurs twice in a and once in b: only its first occurrence is shared
    assert first.keys == second.keys == [(10, 0), (12, 0)]
    assert first.sums["nll_sum"].tolist() == [1.0, 3.0]
    assert second.sums["nll_sum"].tolist() == [6.0, 5.0]
    comparison = compare([a, b])
    assert comparison.n_shared == 2 and comparison.own_documents == [4, 3]
    assert comparison.rates[1]["loss"].value == pytest.approx(11 / 2)
    rows = document_differences(comparison, top=1)
    assert [(r["doc_id"], r["loss_difference"]) for r in rows] == [("d10", 5.0)]


def test_head_differences_put_the_changed_head_first() -> None:
    def heads(changed: float) -> list[dict[str, float | int | None]]:
        return [{"layer": layer, "head": head, "prev_token_score": 0.1,
                 "induction_score": changed if (layer, head) == (1, 2) else 0.1,
                 "attn_entropy": 3.0 if (layer, head) == (0, 0) else 1.0,
                 "bos_attention": None}
                for layer in range(2) for head in range(4)]

    rows = head_differences("b", heads(0.95), heads(0.05))
    assert (rows[0]["layer"], rows[0]["head"]) == (1, 2)
    assert rows[0]["induction_score_difference"] == pytest.approx(-0.9)
    assert rows[0]["bos_attention_difference"] is None
    assert len(rows) == 8


def test_interval_without_draws_has_no_bounds() -> None:
    assert interval(None, np.array([np.nan])) == Interval(None)
    assert corpus_intervals([])["loss"] == Interval(None)


def test_counter_intervals_agree_with_the_bootstrap_on_a_large_job() -> None:
    """Past BOOTSTRAP_DOCUMENTS a job's intervals come from its counters (sums and sums
    of products); there the normal approximation and the bootstrap agree."""
    rows = random_rows(3, n=bootstrap.BOOTSTRAP_DOCUMENTS)
    parts = {part for a, b in MOMENTS for part in (a, b)}
    sums = {name: math.fsum(getattr(row, name) for row in rows) for name in parts}
    moments = {moment_name((a, b)): math.fsum(getattr(row, a) * getattr(row, b) for row in rows)
               for a, b in MOMENTS}
    normal = counter_intervals(len(rows), sums, moments)
    resampled = corpus_intervals(rows)
    assert set(normal) == set(resampled) == {"loss", "accuracy", "induction_hit_rate"}
    for name, expected in resampled.items():
        found = normal[name]
        assert expected.low is not None and expected.high is not None
        assert found.low is not None and found.high is not None and found.value is not None
        width = expected.high - expected.low
        assert found.value == pytest.approx(expected.value, rel=1e-12)
        assert abs(found.low - expected.low) < 0.1 * width, name
        assert abs(found.high - expected.high) < 0.1 * width, name
        assert found.low < found.value < found.high  # a real interval, not a point


def test_normal_interval_without_a_denominator_or_with_one_document() -> None:
    assert normal_interval(10, (0.0, 0.0), (0.0, 0.0, 0.0)) == Interval(None)
    assert normal_interval(1, (3.0, 2.0), (9.0, 6.0, 4.0)) == Interval(1.5)
    # Every document at the same rate: no spread, a zero-width interval.
    assert normal_interval(3, (6.0, 3.0), (14.0, 7.0, 3.5)) == Interval(2.0, 2.0, 2.0)
