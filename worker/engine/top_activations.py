"""The K highest activations of every neuron over a task, reduced inside the hooks.

Each activation entry becomes one int64 key: the float32 value's bits made
order-preserving in the high 32 bits, and in the low 32 bits the complement of the
entry's index in the task (documents one after the other, then positions), so that the
largest key is the highest value and, among equal values, the earliest document and
position (lensbatch/top.py's tie rule). One topk per batch per hook over the reported
positions of the batch (on the CPU, only of the entries at or above a floor that the
neuron's top K cannot fall below, which after the first batch are few), merged with the
running top K by another topk of 2K rows: no loop over neurons, and nothing but the
keys and the counts is kept on the device. Each batch also counts every entry into its
fixed log2 bin, read off the float32 sign and exponent (slot_counts), which gives the
entries above zero as well.

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
# On the CPU a batch's entries at or above each neuron's floor (_floor), at most this
# share of them, are ranked on their own; more (many ties at the floor, or a batch of
# few positions), every entry's key is ranked.
SPARSE_SHARE = 1 / 16
CHUNK_ROWS = 8  # rows per chunk of a task's first batch, whose maxima bound its K-th (_floor)


@dataclass
class _Running:
    keys: torch.Tensor  # [k, neuron] int64, best first
    counts: torch.Tensor  # [SLOTS * neuron] int64, slot-major (slot_counts)
    total: int
    per_head: int
    # The k-th value per neuron once k entries are kept, on the CPU only (where
    # picking the few entries at or above it is cheaper than a top-k of every key).
    floor: torch.Tensor | None = None  # [neuron] float32


@dataclass(frozen=True)
class _Batch:
    rows: torch.Tensor  # [m] int64: flat (row * pos + p) index of each reported position
    ties: torch.Tensor  # [m] int64: LOW_MASK - the entry's index in the task
    every: bool  # every position of the padded batch is reported: rows is 0..m-1


def order_keys(values: torch.Tensor,  # [m, neuron] float32
               ties: torch.Tensor,  # [m] int64
               ) -> torch.Tensor:  # [m, neuron] int64
    bits = values.view(torch.int32)
    ordered = torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF).to(torch.int64)
    return (ordered << LOW_BITS) | ties[:, None]


def key_values(keys: torch.Tensor) -> torch.Tensor:  # [...] float32 from [...] int64
    high = (keys >> LOW_BITS).to(torch.int32)
    return torch.where(high >= 0, high, high ^ 0x7FFFFFFF).view(torch.float32)


# Each neuron's counts are kept in SLOTS slots: its BINS bins, and one more for +0 and
# positive subnormals (bin HALF on the page, but not "above zero"), so that one bincount
# gives the histogram and the positive count alike.
SLOTS = BINS + 1
ZERO_SLOT = BINS


def slot_table() -> torch.Tensor:  # [512] int32: sign-and-exponent code -> slot
    """The slot of every float32 sign-and-exponent code (its int32 bits >> 23, which
    keeps the sign: -256..255, plus 256), as lensbatch.top.value_bins bins it."""
    signed = np.arange(512) - 256  # the bits >> 23, sign kept
    magnitude = np.clip((signed & 0xFF) - EXPONENT_SHIFT, 0, HALF - 1)
    slots = np.where(signed < 0, HALF - 1 - magnitude, HALF + magnitude)
    slots[256] = ZERO_SLOT  # exponent 0, sign 0: +0 and the positive subnormals
    return torch.from_numpy(slots.astype(np.int32))


def slot_counts(values: torch.Tensor, scaled_table: torch.Tensor) -> torch.Tensor:
    """[m, neuron] float32 -> [SLOTS * neuron] int64 counts, slot-major: each entry's
    slot looked up from its sign and exponent bits in `scaled_table` (slot_table() x the
    neuron count), its neuron added, and one bincount. Slot-major, the entries of a row
    that share a slot (most do) count into neighbouring words: 0.77 ms against 0.99 ms
    neuron-major for [270, 3,072]."""
    n_neurons = values.shape[1]
    code = values.view(torch.int32) >> 23  # [m, neuron] in -256..255: sign and exponent
    code += 256  # in place: no second [m, neuron] tensor to allocate (0.15 ms, not 0.77)
    index = scaled_table.index_select(0, code.ravel()).view(code.shape)
    index += torch.arange(n_neurons, device=values.device, dtype=torch.int32)
    return torch.bincount(index.ravel(), minlength=SLOTS * n_neurons)


def fold_slots(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[neuron, SLOTS] -> ([neuron, BINS] histogram, [neuron] counts above zero)."""
    histogram = counts[:, :BINS].copy()
    histogram[:, HALF] += counts[:, ZERO_SLOT]
    return histogram, counts[:, HALF:BINS].sum(1)


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
        self._tables: dict[tuple[torch.device, int], torch.Tensor] = {}  # _scaled_table

    def start(self, windows: Sequence[Window], offsets: torch.Tensor, n_pos: int,
              device: torch.device) -> None:
        """The reported positions of a padded batch and their ranks in the task."""
        rows: list[np.ndarray] = []
        ties: list[np.ndarray] = []
        for row, window in enumerate(windows):
            owned = np.arange(window.owned().start, window.owned().stop, dtype=np.int64)
            rows.append(row * n_pos + int(offsets[row]) + owned)
            ties.append(LOW_MASK - (self.doc_starts[window.doc] + window.start + owned))
        flat = np.concatenate(rows)
        every = len(flat) == len(windows) * n_pos and bool((flat == np.arange(len(flat))).all())
        self._batch = _Batch(torch.from_numpy(flat).to(device),
                             torch.from_numpy(np.concatenate(ties)).to(device), every)
        self._staged.clear()

    def reduce(self, name: str, activation: torch.Tensor) -> None:
        """[batch, pos, ...] -> the batch's best entries per neuron and its counts."""
        if self._batch is None:
            raise RuntimeError("top-activation hook called outside start() and commit()")
        per_head = int(activation.shape[-1])
        values = activation.reshape(activation.shape[0] * activation.shape[1], -1)
        if not self._batch.every:  # padding, or positions another window reports
            values = values.index_select(0, self._batch.rows)
        values = values.float().contiguous()  # [m, neuron]
        keys = None
        if values.device.type == "cpu" and values.shape[0] > self.k:
            keys = self._above(values, self._floor(name, values))
        if keys is None:
            keys = order_keys(values, self._batch.ties)
        # The few entries _above keeps need no top-k of their own once a running top K
        # exists: commit's merge ranks them.
        if name not in self._running or keys.shape[0] > self.k * 4:
            keys = keys.topk(min(self.k, keys.shape[0]), dim=0).values
        self._staged[name] = _Running(keys, slot_counts(values, self._scaled_table(values)),
                                      int(values.shape[0]), per_head)

    def _scaled_table(self, values: torch.Tensor) -> torch.Tensor:
        """slot_table() x the neuron count, on the activations' device (slot_counts)."""
        n_neurons = int(values.shape[1])
        table = self._tables.get((values.device, n_neurons))
        if table is None:
            table = self._tables[(values.device, n_neurons)] = (
                slot_table() * n_neurons).to(values.device)
        return table

    def _floor(self, name: str, values: torch.Tensor) -> torch.Tensor:  # [neuron] float32
        """A value per neuron that every entry of its top K is at or above: the running
        K-th once K entries are kept, else a lower bound of this batch's own K-th. The
        batch's rows are cut into chunks of about CHUNK_ROWS (at least K chunks); each
        chunk's maximum is an entry of a row of its own, so the K-th highest of the
        chunk maxima has K entries at or above it. One max over the batch and a top-k
        of [chunks, neuron], where the batch's exact K-th needs a top-k of every entry,
        and on GELU-like activations hardly looser (2.1% of the entries pass, 2.0% at
        the exact K-th, for K = 20 of 1,024 positions)."""
        running = self._running.get(name)
        if running is not None and running.floor is not None:
            return running.floor
        chunks = max(self.k, values.shape[0] // CHUNK_ROWS)
        rows = values.shape[0] // chunks  # the last rows left over cannot raise the bound
        maxima = values[:chunks * rows].view(chunks, rows, -1).amax(1)  # [chunks, neuron]
        return maxima.topk(self.k, dim=0).values[-1]

    def _above(self, values: torch.Tensor, floor: torch.Tensor) -> torch.Tensor | None:
        """[c, neuron] keys of the entries at or above each neuron's running K-th value
        (the others cannot enter its top K), padded with the lowest key; None when too
        many are (then a top-k of the whole batch is cheaper)."""
        assert self._batch is not None
        rows, neurons = (values >= floor).nonzero(as_tuple=True)  # row-major: the fast one
        if rows.numel() > SPARSE_SHARE * values.numel():
            return None
        neurons, order = neurons.sort()  # each neuron's entries together, in any order
        rows = rows[order]
        counts = torch.bincount(neurons, minlength=values.shape[1])
        depth = int(counts.max()) if rows.numel() else 0
        out = torch.full((max(depth, 1), values.shape[1]), torch.iinfo(torch.int64).min,
                         dtype=torch.int64, device=values.device)
        if depth:
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
                running.counts += batch.counts
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
            histogram, positive = fold_slots(
                running.counts.cpu().numpy().reshape(SLOTS, -1).T)
            out.append(HookTop(
                name, running.per_head, key_values(keys).numpy().T.copy(), doc_seqs[doc],
                (index - self.doc_starts[doc]).astype(np.int32), histogram, positive,
                running.total))
        return out
