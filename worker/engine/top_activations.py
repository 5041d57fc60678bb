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


@dataclass
class _Running:
    keys: torch.Tensor  # [k, neuron] int64, best first
    histogram: torch.Tensor  # [neuron * BINS] int64
    positive: torch.Tensor  # [neuron] int64
    total: int
    per_head: int


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


def bin_counts(values: torch.Tensor) -> torch.Tensor:  # [neuron * BINS] int64
    """Counts of [m, neuron] values per (neuron, bin), bins as lensbatch.top.value_bins."""
    bits = values.view(torch.int32)
    magnitude = (((bits >> 23) & 0xFF) - EXPONENT_SHIFT).clamp_(0, HALF - 1)
    bins = torch.where(bits < 0, HALF - 1 - magnitude, HALF + magnitude)
    flat = bins + torch.arange(values.shape[1], device=values.device) * BINS
    return torch.bincount(flat.ravel(), minlength=values.shape[1] * BINS)


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
        """[batch, pos, ...] -> the batch's top k per neuron, its bin and sign counts."""
        if self._batch is None:
            raise RuntimeError("top-activation hook called outside start() and commit()")
        per_head = int(activation.shape[-1])
        values = activation.reshape(activation.shape[0] * activation.shape[1], -1)
        values = values.index_select(0, self._batch.rows).float().contiguous()  # [m, neuron]
        keys = order_keys(values, self._batch.ties)
        best = keys.topk(min(self.k, keys.shape[0]), dim=0).values
        self._staged[name] = _Running(best, bin_counts(values), (values > 0).sum(0),
                                      int(values.shape[0]), per_head)

    def commit(self) -> None:
        """Merge the staged batch into the running top K (its forward pass finished)."""
        for name, batch in self._staged.items():
            running = self._running.get(name)
            if running is None:
                self._running[name] = batch
                continue
            both = torch.cat((running.keys, batch.keys))
            running.keys = both.topk(min(self.k, both.shape[0]), dim=0).values
            running.histogram += batch.histogram
            running.positive += batch.positive
            running.total += batch.total
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
            out.append(HookTop(
                name, running.per_head, key_values(keys).numpy().T.copy(), doc_seqs[doc],
                (index - self.doc_starts[doc]).astype(np.int32),
                running.histogram.cpu().numpy().reshape(-1, BINS).astype(np.int64),
                running.positive.cpu().numpy().astype(np.int64), running.total))
        return out
