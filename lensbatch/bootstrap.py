"""Confidence intervals for corpus numbers: a seeded bootstrap over documents, or, for
a job of more than BOOTSTRAP_DOCUMENTS documents, the normal approximation from its
counters.

A corpus rate is a ratio of sums over documents (lensbatch/metrics.py's Ratio: the loss
is sum(nll_sum) / sum(n_predictions)), so a resample draws n documents with
replacement and works out the ratio of their sums: long documents weigh in by their
tokens, as in the corpus number itself. Paired differences use the same resampled
documents for both jobs. The generator is seeded and the documents are taken in corpus
order, so the same database gives the same interval every time.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

SAMPLES = 1000  # bootstrap resamples
SEED = 0
LEVEL = 0.95  # percentile interval: the 2.5th and 97.5th percentiles of the resamples
CHUNK_ELEMENTS = 1 << 20  # document indices drawn at a time (8 MiB of int64)
# Above this many documents a job's own intervals come from its counters
# (normal_interval): the bootstrap's cost grows with SAMPLES x documents, and at this
# size the two agree (tests/unit/test_bootstrap.py).
BOOTSTRAP_DOCUMENTS = 20_000
Z_95 = 1.959963984540054  # the normal distribution's 97.5th percentile

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Interval:
    """A number and its 95% interval; the bounds are None where there is nothing to
    resample (no document, or a rate whose denominator is always 0)."""

    value: float | None
    low: float | None = None
    high: float | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (
            self.low > 0 or self.high < 0)


def resampled_sums(columns: Mapping[K, np.ndarray], samples: int = SAMPLES,
                   seed: int = SEED) -> dict[K, np.ndarray]:
    """Each column ([n_documents], all of one length) summed over the same `samples`
    resamples of the documents: {key: [samples]}.

    A resample's sum is sum(times drawn x value) over the documents in document order,
    the same loop for every column (einsum's, not a BLAS kernel that may treat columns
    differently): the same numbers give the same sums to the last bit, whichever other
    columns are resampled with them."""
    keys = list(columns)
    n = len(columns[keys[0]]) if keys else 0
    if n == 0:
        return {key: np.zeros(samples) for key in keys}
    stacked = np.stack([np.asarray(columns[key], dtype=np.float64) for key in keys])  # [k, n]
    sums = np.empty((len(keys), samples))  # [k, samples]
    generator = np.random.default_rng(seed)
    rows = max(1, CHUNK_ELEMENTS // n)
    for start in range(0, samples, rows):
        count = min(rows, samples - start)
        picked = generator.integers(0, n, size=(count, n))  # [count, n] document indices
        flat = (picked + np.arange(count)[:, None] * n).ravel()
        times = np.bincount(flat, minlength=count * n).reshape(count, n)  # [count, n]
        sums[:, start:start + count] = np.einsum("cn,kn->kc", times.astype(np.float64),
                                                 stacked)
    return {key: sums[i] for i, key in enumerate(keys)}


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise numerator / denominator, NaN where the denominator is 0."""
    safe = np.where(denominator != 0, denominator, 1.0)
    return np.where(denominator != 0, numerator / safe, np.nan)


def normal_interval(n: int, sums: tuple[float, float], moments: tuple[float, float, float]
                    ) -> Interval:
    """The rate sum(a) / sum(b) over n documents with its 95% interval by the delta
    method (the normal approximation the bootstrap of a ratio of sums tends to), from
    sums = (sum a, sum b) and moments = (sum a*a, sum a*b, sum b*b): a few numbers
    however many documents. The residuals e = a - rate * b give
    var(rate) = n / (n - 1) * sum(e*e) / sum(b)^2."""
    (a, b), (aa, ab, bb) = sums, moments
    if b == 0:
        return Interval(None)
    rate = a / b
    if n < 2:
        return Interval(rate)
    residual = max(aa - 2 * rate * ab + rate * rate * bb, 0.0)  # sum(e*e), rounding aside
    half = Z_95 * math.sqrt(n / (n - 1) * residual) / abs(b)
    return Interval(rate, rate - half, rate + half)


def interval(value: float | None, draws: np.ndarray) -> Interval:
    """`value` with the percentile interval of its resampled `draws` (NaNs left out)."""
    finite = draws[np.isfinite(draws)]
    if value is None or finite.size == 0:
        return Interval(value)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(value, float(low), float(high))
