"""Max-activating contexts per neuron: plain data and the exact, idempotent merge.

For every neuron of a hook (each index of its last dimension; per head for a hook with
a head dimension, hook_z) a job keeps the K highest activations over its corpus, each
with its document (seq) and position, a fixed-bin histogram of all its activations and
how many were above zero. The engine reduces a task's batches to one `HookTop` per hook
(worker/engine/top_activations.py); the store merges it into what the job already has
(lensbatch/store/top_rows.py) with `merge_top`, which is the top K of the union of
(document, position) entries: merging the same entries twice changes nothing.

Ties are broken the same way everywhere: by value (highest first), then document,
then position (lowest first). Plain numpy: no torch, no SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Symmetric log2 bins, the same for every hook: bin HALF + j holds values v >= 0 with
# 2^(j + LOW - 1) <= v < 2^(j + LOW) (j = 0: 0 <= v < 2^LOW; the last bin is open
# above), and bin HALF - 1 - j the same magnitudes below zero.
BINS = 32
HALF = BINS // 2
LOW = -8  # the smallest magnitude a bin tells apart: 2^-8
# Exponent field of a float32 (bits 23..30) -> magnitude bin: (exponent - 127) - LOW + 1.
EXPONENT_SHIFT = 127 + LOW - 1


def bin_edges() -> np.ndarray:  # [BINS + 1] float64, -inf and inf at the ends
    """The lower edge of every bin, and +inf: bins HALF-1 and HALF meet at 0."""
    magnitudes = 2.0 ** np.arange(LOW, LOW + HALF - 1)  # 2^-8 .. 2^6
    return np.concatenate(([-np.inf], -magnitudes[::-1], [0.0], magnitudes, [np.inf]))


def value_bins(values: np.ndarray) -> np.ndarray:  # [...] int64 in 0..BINS-1
    """The bin of each value: what the engine computes from the float32 bits."""
    bits = np.asarray(values, dtype=np.float32).view(np.int32)
    exponent = (bits >> 23) & 0xFF
    magnitude = np.clip(exponent.astype(np.int64) - EXPONENT_SHIFT, 0, HALF - 1)
    return np.where(bits < 0, HALF - 1 - magnitude, HALF + magnitude)


@dataclass(frozen=True)
class HookTop:
    """One hook's top activations over some documents, neuron-major.

    Neuron n of a hook with heads is head n // per_head, index n % per_head. Every
    neuron has the same number of entries (min(K, positions seen)), sorted best first.
    """

    hook: str
    per_head: int  # neurons per head; the hook's whole last dimension when it has none
    values: np.ndarray  # [neuron, k] float32
    seqs: np.ndarray  # [neuron, k] int64: the job's document numbers
    positions: np.ndarray  # [neuron, k] int32: positions in the document (BOS included)
    histogram: np.ndarray  # [neuron, BINS] int64
    positive: np.ndarray  # [neuron] int64: activations above zero (normal floats)
    total: int  # positions seen (the same for every neuron)

    @property
    def n_neurons(self) -> int:
        return int(self.values.shape[0])


def ranked(values: np.ndarray, seqs: np.ndarray, positions: np.ndarray, k: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the k best distinct (seq, position) entries, best first.

    values/seqs/positions: [row, m]. Where one (seq, position) appears twice in a row
    (the same document merged twice), one copy is kept: the higher value. Stable sorts
    along each row: by value, then by (seq, position), so that equal entries sit side
    by side, best first; then by value again with the copies last.
    """
    def take(array: np.ndarray, order: np.ndarray) -> np.ndarray:
        return np.take_along_axis(array, order, axis=1)

    # (seq, position) as one key: positions are int32, seqs below 2^31.
    where = (seqs.astype(np.int64) << 32) | positions.astype(np.int64)
    descending = -values.astype(np.float64)
    order = np.argsort(descending, axis=1, kind="stable")
    order = take(order, np.argsort(take(where, order), axis=1, kind="stable"))
    sorted_where = take(where, order)
    duplicate = np.zeros(where.shape, dtype=bool)
    duplicate[:, 1:] = sorted_where[:, 1:] == sorted_where[:, :-1]
    last = np.where(duplicate, np.inf, take(descending, order))
    order = take(order, np.argsort(last, axis=1, kind="stable"))
    kept = int(where.shape[1] - duplicate.sum(1).max()) if where.shape[0] else 0
    chosen = order[:, :min(k, kept)]
    return take(values, chosen), take(seqs, chosen), take(positions, chosen)


def merge_top(stored: HookTop, new: HookTop, k: int) -> HookTop:
    """The top k of the union of both entries, the histograms and counts added.

    Counts add (each task adds only documents whose results it wrote); the entries are
    a union, so a document merged twice cannot appear twice.
    """
    values, seqs, positions = ranked(np.concatenate((stored.values, new.values), 1),
                                     np.concatenate((stored.seqs, new.seqs), 1),
                                     np.concatenate((stored.positions, new.positions), 1), k)
    return HookTop(new.hook, new.per_head, values.astype(np.float32), seqs.astype(np.int64),
                   positions.astype(np.int32), stored.histogram + new.histogram,
                   stored.positive + new.positive, stored.total + new.total)
