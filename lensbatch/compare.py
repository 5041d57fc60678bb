"""Comparing jobs on the documents they share: corpus rates with 95% intervals, paired
differences, the documents that differ most, and per-head score differences.

Plain functions over plain data (no SQL, no torch): lensbatch/store/sweeps.py reads the
per-document sums, lensbatch/store/queries.py the per-head means. Documents are matched
by their stored text (and, for a text that occurs twice in a corpus, by occurrence), so
jobs over different corpora are compared on what they share, in the first job's order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lensbatch.bootstrap import (
    SAMPLES,
    SEED,
    Interval,
    interval,
    normal_interval,
    ratio,
    resampled_sums,
)
from lensbatch.errors import UserError
from lensbatch.metrics import DOC_METRICS, HEAD_SCORES, DocMetric, Ratio, moment_name

RATES: tuple[DocMetric, ...] = tuple(m for m in DOC_METRICS if isinstance(m.corpus, Ratio))
# The per-head scores whose differences order the head table: the ones the report draws
# as heatmaps, all attention shares in [0, 1].
RANKED_HEAD_SCORES = tuple(s.name for s in HEAD_SCORES if s.heatmap is not None)


@dataclass(frozen=True)
class JobDocuments:
    """One job's documents with a result, in corpus order."""

    job_id: str
    model: str
    keys: list[tuple[int, int]]  # (stored document id, occurrence of that text in the job)
    doc_ids: list[str]
    sums: dict[str, np.ndarray]  # summed metric -> [n_documents] float64

    @property
    def size(self) -> int:
        return len(self.keys)


def job_documents(job_id: str, model: str, rows: Sequence[Any]) -> JobDocuments:
    """From lensbatch/store/sweeps.py's document_sums rows."""
    seen: dict[int, int] = {}
    keys = []
    for row in rows:
        seen[row.document_id] = seen.get(row.document_id, -1) + 1
        keys.append((int(row.document_id), seen[row.document_id]))
    names = {name for m in RATES if isinstance(m.corpus, Ratio)
             for name in (m.corpus.numerator, m.corpus.denominator)}
    sums = {name: np.array([float(getattr(row, name)) for row in rows], dtype=np.float64)
            for name in sorted(names)}
    return JobDocuments(job_id, model, keys, [str(row.doc_id) for row in rows], sums)


def aligned(jobs: Sequence[JobDocuments]) -> list[JobDocuments]:
    """Every job restricted to the documents all of them have, in the first job's order."""
    shared = set(jobs[0].keys).intersection(*(job.keys for job in jobs[1:]))
    order = [key for key in jobs[0].keys if key in shared]
    out = []
    for job in jobs:
        where = {key: i for i, key in enumerate(job.keys)}
        picked = np.array([where[key] for key in order], dtype=np.int64)
        out.append(JobDocuments(job.job_id, job.model, order,
                                [job.doc_ids[i] for i in picked],
                                {name: column[picked] for name, column in job.sums.items()}))
    return out


def rate_value(sums: Mapping[str, np.ndarray], metric: DocMetric) -> float | None:
    assert isinstance(metric.corpus, Ratio)
    denominator = float(sums[metric.corpus.denominator].sum())
    return float(sums[metric.corpus.numerator].sum()) / denominator if denominator else None


def _rate_draws(draws: Mapping[tuple[int, str], np.ndarray], job: int,
                metric: DocMetric) -> np.ndarray:
    assert isinstance(metric.corpus, Ratio)
    return ratio(draws[(job, metric.corpus.numerator)], draws[(job, metric.corpus.denominator)])


@dataclass(frozen=True)
class Comparison:
    jobs: list[JobDocuments]  # restricted to the shared documents
    own_documents: list[int]  # how many documents with results each job has in all
    rates: list[dict[str, Interval]]  # per job: every rate of the registry
    differences: list[dict[str, Interval]]  # per job after the first: job - first job

    @property
    def n_shared(self) -> int:
        return self.jobs[0].size


def compare(jobs: Sequence[JobDocuments], samples: int = SAMPLES,
            seed: int = SEED) -> Comparison:
    """Rates and paired differences (each job against the first) on the shared
    documents, every job resampled with the same documents."""
    if not jobs:
        raise UserError("nothing to compare")
    shared = aligned(jobs)
    columns = {(i, name): column for i, job in enumerate(shared)
               for name, column in job.sums.items()}
    draws = resampled_sums(columns, samples, seed)
    rates = [{m.name: interval(rate_value(job.sums, m), _rate_draws(draws, i, m))
              for m in RATES} for i, job in enumerate(shared)]
    differences = []
    for i in range(1, len(shared)):
        row = {}
        for m in RATES:
            a, b = rates[0][m.name].value, rates[i][m.name].value
            value = None if a is None or b is None else b - a
            row[m.name] = interval(value, _rate_draws(draws, i, m) - _rate_draws(draws, 0, m))
        differences.append(row)
    return Comparison(shared, [job.size for job in jobs], rates, differences)


def corpus_intervals(rows: Sequence[Any], samples: int = SAMPLES,
                     seed: int = SEED) -> dict[str, Interval]:
    """One job's rates with their intervals, from its document_sums rows (the same as
    `compare` gives that job when every document is shared)."""
    return compare([job_documents("", "", rows)], samples, seed).rates[0]


def counter_intervals(n: int, sums: Mapping[str, float],
                      moments: Mapping[str, float]) -> dict[str, Interval]:
    """One job's rates with their intervals from its counters (sums over documents and
    MOMENTS, by moment_name): for a job too large to resample."""
    found = {}
    for m in RATES:
        assert isinstance(m.corpus, Ratio)
        a, b = m.corpus.numerator, m.corpus.denominator
        products = (moments[moment_name((a, a))], moments[moment_name((a, b))],
                    moments[moment_name((b, b))])
        found[m.name] = normal_interval(n, (sums[a], sums[b]), products)
    return found


def document_rates(job: JobDocuments, metric: DocMetric) -> np.ndarray:
    """[n_documents] per-document rate, NaN where the denominator is 0."""
    assert isinstance(metric.corpus, Ratio)
    return ratio(job.sums[metric.corpus.numerator], job.sums[metric.corpus.denominator])


def document_differences(comparison: Comparison, top: int) -> list[dict[str, Any]]:
    """For each job after the first, the `top` shared documents whose loss differs most
    from the first job's (largest absolute difference first), with their accuracies."""
    loss, accuracy = (next(m for m in RATES if m.name == n) for n in ("loss", "accuracy"))
    base = comparison.jobs[0]
    rows: list[dict[str, Any]] = []
    for job in comparison.jobs[1:]:
        delta = document_rates(job, loss) - document_rates(base, loss)  # [n_documents]
        order = np.argsort(-np.nan_to_num(np.abs(delta), nan=-1.0), kind="stable")[:top]
        for i in order.tolist():
            if np.isnan(delta[i]):
                continue
            rows.append({
                "job": job.job_id, "doc_id": job.doc_ids[i],
                "baseline_loss": float(document_rates(base, loss)[i]),
                "loss": float(document_rates(job, loss)[i]), "loss_difference": float(delta[i]),
                "baseline_accuracy": float(document_rates(base, accuracy)[i]),
                "accuracy": float(document_rates(job, accuracy)[i]),
            })
    return rows


def head_differences(job_id: str, baseline: Sequence[Mapping[str, Any]],
                     other: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (layer, head) that both jobs have: each score of the baseline, of the other
    job and their difference, ordered by the largest absolute difference in a ranked
    score (RANKED_HEAD_SCORES)."""
    base = {(row["layer"], row["head"]): row for row in baseline}
    rows = []
    for row in other:
        key = (row["layer"], row["head"])
        if key not in base:
            continue
        entry: dict[str, Any] = {"job": job_id, "layer": key[0], "head": key[1]}
        for score in HEAD_SCORES:
            a, b = base[key][score.name], row[score.name]
            entry[f"baseline_{score.name}"] = a
            entry[score.name] = b
            entry[f"{score.name}_difference"] = None if a is None or b is None else b - a
        rows.append(entry)

    def rank(entry: dict[str, Any]) -> float:
        found = [abs(entry[f"{name}_difference"]) for name in RANKED_HEAD_SCORES
                 if entry[f"{name}_difference"] is not None]
        return -max(found, default=-1.0)

    return sorted(rows, key=lambda entry: (rank(entry), entry["layer"], entry["head"]))
