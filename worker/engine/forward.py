"""One batch of windows through the model: launched on the device, collected on the CPU.

`launch_windows` pads the windows, queues the forward pass (the reducer's hooks on) and
the losses and accuracies of the scored positions, read from the final residual stream
in chunks (worker/engine/unembed.py), and starts copying the per-row results to the
CPU. `collect_windows` waits for them and cuts them into one WindowScores per window,
with the window's induction candidates, found on the CPU from its tokens.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformer_lens.model_bridge import TransformerBridge

from worker.engine.batching import pad
from worker.engine.card import attention_layers
from worker.engine.documents import WindowScores
from worker.engine.induction_groups import induction_groups
from worker.engine.reducer import BatchReducer
from worker.engine.summaries import Positions, batch_positions
from worker.engine.token_metrics import earlier_bigrams
from worker.engine.unembed import forward_for_scores, score_positions, unembedding
from worker.engine.windows import Window


@dataclass(frozen=True)
class LaunchedBatch:
    """A batch whose forward pass has been queued on the device; its results arrive in
    `host`, in CPU memory, once `ready` (a CUDA event, or None elsewhere) has passed."""

    windows: list[Window]
    host: dict[str, torch.Tensor]
    ready: torch.cuda.Event | None


def _to_host(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], Any]:
    """Start copying device tensors to the CPU without waiting for them (CUDA), so the
    next batch can be queued while this one runs; elsewhere, copy now."""
    if not any(t.is_cuda for t in tensors.values()):
        return {name: t.cpu() for name, t in tensors.items()}, None
    host = {name: t.to("cpu", non_blocking=True) for name, t in tensors.items()}
    ready = torch.cuda.Event()
    ready.record()
    return host, ready


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A plain copy to CUDA waits for all queued work; from pinned memory it need not."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def padding_for(model: TransformerBridge, requested: str) -> str:
    """The job's padding side, except for a model without attention: a recurrent model
    reads every position in order (RWKV ignores the attention mask), so left padding
    would run it over the padding first; on the right, padding follows what counts."""
    return requested if attention_layers(model) else "right"


def _repeat_width(windows: list[Window]) -> int:
    """The most earlier occurrences any query of the batch has of its own token."""
    return max(max(Counter(w.tokens).values()) - 1 for w in windows)


def scored_index(
    windows: list[Window], offsets: torch.Tensor,  # [batch]: each row's first real index
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # rows, cols, targets: each [n]
    """The padded (row, position) of every scored position, window after window, and
    the token each predicts."""
    rows: list[int] = []
    cols: list[int] = []
    targets: list[int] = []
    for row, window in enumerate(windows):
        scored = window.scored()
        offset = int(offsets[row])
        rows += [row] * len(scored)
        cols += range(offset + scored.start, offset + scored.stop)
        targets += window.targets()[scored.start:scored.stop]
    return (torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long),
            torch.tensor(targets, dtype=torch.long))


def _positions(windows: list[Window], tokens: torch.Tensor, mask: torch.Tensor,
               offsets: torch.Tensor, device: torch.device) -> Positions:
    """What the reducer's hooks need to know of the batch, on its device, from the
    padded tokens and mask on the CPU."""
    owned_from = offsets + torch.tensor([w.owned().start for w in windows])
    owned_to = offsets + torch.tensor([w.owned().stop for w in windows])
    groups = induction_groups(tokens, mask, device)
    tokens, mask, owned_from, owned_to, first = (
        _to_device(t, device) for t in (tokens, mask, owned_from, owned_to, offsets))
    return batch_positions(tokens, mask, owned_from, owned_to, first, _repeat_width(windows),
                           groups)


def launch_windows(
    model: TransformerBridge, windows: list[Window], padding_side: str, reducer: BatchReducer
) -> LaunchedBatch:
    """Queue one forward pass over a padded batch of windows, with the reducer's hooks
    on, and the copies of its per-row results to the CPU. Nothing here waits for the
    device."""
    device = torch.device(model.cfg.device or "cpu")
    pad_id = model.tokenizer.pad_token_id or 0
    if pad_id >= int(model.cfg.d_vocab):  # a pad token added past the embedding
        pad_id = 0
    tokens, mask, offsets = pad([w.tokens for w in windows], pad_id,
                                padding_for(model, padding_side))
    rows, cols, targets = scored_index(windows, offsets)
    positions = _positions(windows, tokens, mask, offsets, device) if reducer.fwd_hooks() \
        else None
    tokens, mask, rows, cols, targets = (
        _to_device(t, device) for t in (tokens, mask, rows, cols, targets))
    counts = torch.zeros(len(windows), 4, dtype=torch.long, device=device)
    if positions is not None:
        counts = positions.counts
        reducer.start(positions)
        if reducer.top is not None:
            reducer.top.start(windows, offsets, tokens.shape[1], device)
    unembed = unembedding(model)
    source = forward_for_scores(model, tokens, mask, unembed)
    nll, correct = score_positions(source, rows, cols, targets, unembed)  # each [n]
    del source
    heads, moments = reducer.finish(len(windows))
    results = {"nll": nll, "correct": correct, "heads": heads, "counts": counts}
    results.update({f"moments:{name}": value for name, value in moments.items()})
    host, ready = _to_host(results)
    return LaunchedBatch(windows, host, ready)


def window_earlier(window: Window) -> np.ndarray:  # [n_scored] int64
    """For each scored position, the document position of the first occurrence of its
    bigram inside the window (the predicted token included), or -1."""
    read = window.tokens if window.next_token is None else [*window.tokens, window.next_token]
    scored = window.scored()
    earlier = earlier_bigrams(np.asarray(read, dtype=np.int64))[scored.start:scored.stop]
    return np.where(earlier >= 0, earlier + window.start, -1)


def collect_windows(launched: LaunchedBatch) -> list[WindowScores]:
    """Wait for a launched batch and cut its results into one WindowScores per window."""
    if launched.ready is not None:
        launched.ready.synchronize()
    host = {name: value.numpy() for name, value in launched.host.items()}
    moments = {name.split(":", 1)[1]: value for name, value in host.items()
               if name.startswith("moments:")}
    scores = []
    at = 0  # the scored positions are listed window after window
    for row, window in enumerate(launched.windows):
        part = slice(at, at + len(window.scored()))
        at = part.stop
        scores.append(WindowScores(
            host["nll"][part], host["correct"][part], window_earlier(window),
            host["heads"][row], host["counts"][row],
            {name: value[row] for name, value in moments.items()},
        ))
    return scores
