"""The K highest activations of every neuron over a task, reduced inside the hooks.

Each activation entry becomes one int64 key: the float32 value's bits made
order-preserving in the high 32 bits, and in the low 32 bits the complement of the
entry's index in the task (documents one after the other, then positions), so that the
largest key is the highest value and, among equal values, the earliest document and
position (lensbatch/top.py's tie rule). One topk per batch per hook over the reported
positions of the batch, merged with the running top K by another topk of 2K rows: no
loop over neurons, and nothing but the keys is kept on the device. The same pass
counts every entry into its fixed log2 bin (read off the float32 exponent) and the
entries above zero.

A batch's reductions are staged and merged only in `commit` (after its forward pass has
finished): a batch that runs out of memory and is scored again in halves counts once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lensbatch.top import BINS, EXPONENT_SHIFT, HALF, HookTop
from worker.engine.windows import Window

LOW_BITS = 32
LOW_MASK = (1 << LOW_BITS) - 1
RAW = 512  # sign-and-exponent codes of a float32
# A batch's entries above the running K-th value, at most this share of them, are
# merged on their own; more (the first batches), the whole batch's top k is taken.
SPARSE_SHARE = 1 / 16


@dataclass
class _Running:
    keys: torch.Tensor  # [k, neuron] int64, best first
    histogram: torch.Tensor  # [neuron * RAW] int64: sign-and-exponent counts
    total: int
    per_head: int
    # The k-th value per neuron once k entries are kept, on the CPU only (where
    # picking the few entries above it is cheaper than a top-k of the whole batch).
    floor: torch.Tensor | None = None  # [neuron] float32


@dataclass(frozen=True)
class _Batch:
    rows: torch.Tensor  # [m] int64: flat (row * pos + p) index of each reported position
    ties: torch.Tensor  # [m] int64: LOW_MASK - the entry's index in the task


def order_keys(values: torch.Tensor,  # [m, neuron] float32
               ties: torch.Tensor,  # [m] int64
               ) -> torch.Tensor:  # [m, neuron] int64
    bits = values.view(torch.int32)
    ordered = torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF).to(torch.int64)
    return (ordered << LOW_BITS) | ties[:, None]


def key_values(keys: torch.Tensor) -> torch.Tensor:  # [...] float32 from [...] int64
    high = (keys >> LOW_BITS).to(torch.int32)
    return torch.where(high >= 0, high, high ^ 0x7FFFFFFF).view(torch.float32)


def raw_counts(values: torch.Tensor) -> torch.Tensor:  # [neuron * RAW] int64
    """Counts of [m, neuron] values per (neuron, sign and exponent): the float32 bits
    shifted right by 23 are -256..255, one code per sign and exponent. Two passes and a
    bincount; folded into the BINS bins once per task (fold_counts)."""
    offsets = torch.arange(values.shape[1], device=values.device, dtype=torch.int32) * RAW
    codes = (values.view(torch.int32) >> 23) + (offsets + RAW // 2)
    return torch.bincount(codes.ravel(), minlength=values.shape[1] * RAW)


def fold_counts(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[neuron, RAW] sign-and-exponent counts -> ([neuron, BINS] counts as
    lensbatch.top.value_bins, [neuron] counts above zero: positive normal floats, so a
    subnormal below 1.2e-38 counts as zero)."""
    code = np.arange(RAW) - RAW // 2  # the shifted bits: sign and exponent
    exponent = code & 0xFF
    magnitude = np.clip(exponent - EXPONENT_SHIFT, 0, HALF - 1)
    bins = np.where(code < 0, HALF - 1 - magnitude, HALF + magnitude)
    folded = np.zeros((raw.shape[0], BINS), dtype=np.int64)
    for target in range(BINS):  # 32 column sums
        folded[:, target] = raw[:, bins == target].sum(1)
    positive = raw[:, (code >= 0) & (exponent > 0)].sum(1)
    return folded, positive


class TopAccumulator:
    """The running top K of `hooks` over one task's documents (their token counts
    `doc_lengths`, in the task's order)."""

    def __init__(self, hooks: Sequence[str], k: int, doc_lengths: Sequence[int]) -> None:
        self.hooks = tuple(hooks)
        self.k = k
        self.doc_starts = np.concatenate(([0], np.cumsum(doc_lengths, dtype=np.int64)))
        if self.doc_starts[-1] > LOW_MASK:
            raise ValueError(f"a task of {self.doc_starts[-1]} tokens is too large to rank")
        self._running: dict[str, _Running] = {}
        self._staged: dict[str, _Running] = {}
        self._batch: _Batch | None = None

    def start(self, windows: Sequence[Window], offsets: torch.Tensor, n_pos: int,
              device: torch.device) -> None:
        """The reported positions of a padded batch and their ranks in the task."""
        rows: list[np.ndarray] = []
        ties: list[np.ndarray] = []
        for row, window in enumerate(windows):
            owned = np.arange(window.owned().start, window.owned().stop, dtype=np.int64)
            rows.append(row * n_pos + int(offsets[row]) + owned)
            ties.append(LOW_MASK - (self.doc_starts[window.doc] + window.start + owned))
        self._batch = _Batch(torch.from_numpy(np.concatenate(rows)).to(device),
                             torch.from_numpy(np.concatenate(ties)).to(device))
        self._staged.clear()

    def reduce(self, name: str, activation: torch.Tensor) -> None:
        """[batch, pos, ...] -> the batch's best entries per neuron and its counts."""
        if self._batch is None:
            raise RuntimeError("top-activation hook called outside start() and commit()")
        per_head = int(activation.shape[-1])
        values = activation.reshape(activation.shape[0] * activation.shape[1], -1)
        values = values.index_select(0, self._batch.rows).float().contiguous()  # [m, neuron]
        running = self._running.get(name)
        best = None
        if running is not None and running.floor is not None:
            best = self._above(values, running.floor)
        if best is None:
            keys = order_keys(values, self._batch.ties)
            best = keys.topk(min(self.k, keys.shape[0]), dim=0).values
        self._staged[name] = _Running(best, raw_counts(values), int(values.shape[0]), per_head)

    def _above(self, values: torch.Tensor, floor: torch.Tensor) -> torch.Tensor | None:
        """[c, neuron] keys of the entries at or above each neuron's running K-th value
        (the others cannot enter its top K), padded with the lowest key; None when too
        many are (then a top-k of the whole batch is cheaper)."""
        assert self._batch is not None
        rows, neurons = (values >= floor).nonzero(as_tuple=True)
        if rows.numel() > SPARSE_SHARE * values.numel():
            return None
        counts = torch.bincount(neurons, minlength=values.shape[1])
        depth = int(counts.max()) if rows.numel() else 0
        out = torch.full((max(depth, 1), values.shape[1]), torch.iinfo(torch.int64).min,
                         dtype=torch.int64, device=values.device)
        if depth:
            order = torch.argsort(neurons, stable=True)
            rows, neurons = rows[order], neurons[order]
            starts = torch.cumsum(counts, 0) - counts
            slot = torch.arange(neurons.numel(), device=values.device) - starts[neurons]
            out[slot, neurons] = order_keys(values[rows, neurons][:, None],
                                            self._batch.ties[rows]).squeeze(1)
        return out

    def commit(self) -> None:
        """Merge the staged batch into the running top K (its forward pass finished)."""
        for name, batch in self._staged.items():
            running = self._running.get(name)
            if running is None:
                running = self._running[name] = batch
            else:
                both = torch.cat((running.keys, batch.keys))
                running.keys = both.topk(min(self.k, both.shape[0]), dim=0).values
                running.histogram += batch.histogram
                running.total += batch.total
            if running.keys.device.type == "cpu" and running.total >= self.k:
                running.floor = key_values(running.keys[-1])
        self._staged.clear()
        self._batch = None

    def result(self, seqs: Sequence[int]) -> list[HookTop]:
        """Each hook's top activations, with the documents as the job's `seqs`."""
        doc_seqs = np.asarray(seqs, dtype=np.int64)
        out = []
        for name in self.hooks:
            running = self._running.get(name)
            if running is None:
                continue
            keys = running.keys.cpu()
            index = LOW_MASK - (keys & LOW_MASK).numpy().T  # [neuron, k]
            doc = np.searchsorted(self.doc_starts, index, side="right") - 1
            histogram, positive = fold_counts(running.histogram.cpu().numpy().reshape(-1, RAW))
            out.append(HookTop(
                name, running.per_head, key_values(keys).numpy().T.copy(), doc_seqs[doc],
                (index - self.doc_starts[doc]).astype(np.int32), histogram, positive,
                running.total))
        return out
