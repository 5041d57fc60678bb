"""Evaluate documents with a TransformerLens bridge: the pure core of a worker's task.

texts -> tokens (BOS prepended if asked; long texts in pieces) -> windows ->
length-sorted padded batches -> one forward pass per batch, whose hooks reduce attention
patterns and the selected activations as they pass (worker/reducer.py) -> per-position
metrics and per-window sums -> stitched back per document.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from lensbatch.evaluation import DocEvaluation, DocMetrics, InductionHit
from lensbatch.jobspec import JobSpec
from worker.engine.adaptive import halve_on_oom, release_cached_memory
from worker.engine.batching import batch_budget, budget_batches, pad
from worker.engine.card import attention_layers
from worker.engine.documents import HeadLayout, WindowScores, stitch
from worker.engine.models import resolve_hooks
from worker.engine.reducer import BatchReducer
from worker.engine.summaries import batch_positions
from worker.engine.token_metrics import next_token_correct, next_token_nll
from worker.engine.tokenizer import bridge_tokens
from worker.engine.windows import Window, split_windows

__all__ = ["DocEvaluation", "DocMetrics", "InductionHit", "WindowScores", "analyse_texts",
           "analyse_tokens", "evaluate_texts", "evaluate_tokens", "score_windows", "tokenize"]


def tokenize(model: TransformerBridge, texts: list[str],
             prepend_bos: bool | None) -> list[list[int]]:
    """Token ids per text as TransformerLens's to_tokens gives them, BOS by the model's
    rule unless prepend_bos says otherwise; never truncated (long documents are windowed
    instead). worker/engine/tokenizer.py bridge_tokens has the rules."""
    return bridge_tokens(model, texts, prepend_bos)


@dataclass(frozen=True)
class LaunchedBatch:
    """A batch whose forward pass has been queued on the device; its results arrive in
    `host`, in CPU memory, once `ready` (a CUDA event, or None elsewhere) has passed."""

    windows: list[Window]
    offsets: torch.Tensor  # [batch], CPU
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
    owned_from = offsets + torch.tensor([w.owned().start for w in windows])
    owned_to = offsets + torch.tensor([w.owned().stop for w in windows])
    # Document position of each row's padded index 0.
    shift = torch.tensor([w.start for w in windows]) - offsets
    tokens, mask, owned_from, owned_to, first, shift = (
        _to_device(t, device) for t in (tokens, mask, owned_from, owned_to, offsets, shift))
    positions = batch_positions(tokens, mask, owned_from, owned_to, first,
                                _repeat_width(windows))
    earlier = positions.earlier_bigram
    earlier = torch.where(earlier >= 0, earlier + shift[:, None], -1)  # document positions
    reducer.start(positions)
    logits = model(tokens, attention_mask=mask, return_type="logits")  # [batch, pos, d_vocab]
    results = {
        "nll": next_token_nll(logits, tokens),  # [batch, pos - 1]
        "correct": next_token_correct(logits, tokens),  # [batch, pos - 1]
    }
    del logits
    heads, moments = reducer.finish()
    results.update({"heads": heads, "counts": positions.counts, "earlier": earlier})
    results.update({f"moments:{name}": value for name, value in moments.items()})
    host, ready = _to_host(results)
    return LaunchedBatch(windows, offsets, host, ready)


def collect_windows(launched: LaunchedBatch) -> list[WindowScores]:
    """Wait for a launched batch and cut its results into one WindowScores per window."""
    if launched.ready is not None:
        launched.ready.synchronize()
    host = {name: value.numpy() for name, value in launched.host.items()}
    moments = {name.split(":", 1)[1]: value for name, value in host.items()
               if name.startswith("moments:")}
    scores = []
    for row, window in enumerate(launched.windows):
        offset = int(launched.offsets[row])
        first = offset + window.score_from
        last = offset + window.length - 1  # exclusive: last token predicts nothing
        scores.append(WindowScores(
            host["nll"][row, first:last], host["correct"][row, first:last],
            host["earlier"][row, first:last], host["heads"][row], host["counts"][row],
            {name: value[row] for name, value in moments.items()},
        ))
    return scores


def score_windows(
    model: TransformerBridge, windows: list[Window], padding_side: str,
    reducer: BatchReducer | None = None,
) -> list[WindowScores]:
    """One forward pass over a padded batch of windows, waited for. Without a reducer
    whose hooks are on, one without activations is made and hooked for this batch."""
    if reducer is not None:
        return collect_windows(launch_windows(model, windows, padding_side, reducer))
    reducer = BatchReducer(attention_layers(model), [], ())
    with torch.inference_mode(), model.hooks(fwd_hooks=reducer.fwd_hooks()):
        return collect_windows(launch_windows(model, windows, padding_side, reducer))


# One synchronous forward pass over a batch of windows (score_windows, or a test's
# stand-in that injects allocation failures).
ScoreFn = Callable[[TransformerBridge, list[Window], str, BatchReducer], list[WindowScores]]


def _score_all(
    model: TransformerBridge, windows: list[Window], spec: JobSpec, reducer: BatchReducer,
    scorer: ScoreFn | None = None,
) -> list[WindowScores]:
    """Every window, in length-sorted batches under the token budget, in the given order.

    Batch k + 1 is queued before batch k's results are waited for, so the device is
    kept busy while the CPU prepares and cuts up batches, as in a bare forward loop.
    A batch that runs out of accelerator memory is scored again as two halves, each
    halved again if need be (worker/adaptive.py); `scorer` replaces the queued passes
    with synchronous ones.
    """
    def run(batch_windows: list[Window]) -> list[WindowScores]:
        return (scorer or score_windows)(model, batch_windows, spec.padding_side, reducer)

    halving = halve_on_oom(run)
    scores: dict[int, WindowScores] = {}
    pending: tuple[list[int], LaunchedBatch] | None = None
    budget = batch_budget(spec.batch_tokens, model.cfg.device or "cpu")
    for batch in budget_batches([w.length for w in windows], budget):
        items = [windows[i] for i in batch]
        launched: LaunchedBatch | None = None
        if scorer is None:
            try:
                launched = launch_windows(model, items, spec.padding_side, reducer)
            except torch.OutOfMemoryError:
                if len(items) == 1:
                    raise
        if pending is not None:
            scores.update(zip(pending[0], collect_windows(pending[1]), strict=True))
            pending = None
        if launched is not None:
            pending = (batch, launched)
            continue
        if scorer is None:  # the queued pass ran out of memory: retry in halves
            release_cached_memory()
            half = len(items) // 2
            scores.update(zip(batch, halving(items[:half]) + halving(items[half:]),
                              strict=True))
        else:
            scores.update(zip(batch, halving(items), strict=True))
    if pending is not None:
        scores.update(zip(pending[0], collect_windows(pending[1]), strict=True))
    return [scores[index] for index in range(len(windows))]


def document_windows(
    model: TransformerBridge, docs: list[list[int]], spec: JobSpec,
    scorer: ScoreFn | None = None,
) -> list[list[WindowScores]]:
    """Every sequence's windows, scored in batches, in document order per sequence."""
    n_ctx = int(model.cfg.n_ctx)
    stride = spec.stride or n_ctx // 2
    layout = HeadLayout(int(model.cfg.n_layers), attention_layers(model))
    reducer = BatchReducer(layout.layers, resolve_hooks(model, spec.activations), spec.stats)
    windows = [w for i, toks in enumerate(docs) for w in split_windows(i, toks, n_ctx, stride)]
    with torch.inference_mode(), model.hooks(fwd_hooks=reducer.fwd_hooks()):
        scores = _score_all(model, windows, spec, reducer, scorer)
    per_doc: list[list[WindowScores]] = [[] for _ in docs]
    for window, score in zip(windows, scores, strict=True):
        per_doc[window.doc].append(score)
    return per_doc


def analyse_tokens(
    model: TransformerBridge, docs: list[list[int]], spec: JobSpec,
    scorer: ScoreFn | None = None,
) -> list[DocEvaluation]:
    """Metrics, head summaries, activation statistics and induction hits per sequence,
    in order, whatever the batching."""
    per_doc = document_windows(model, docs, spec, scorer)
    layout = HeadLayout(int(model.cfg.n_layers), attention_layers(model))
    return [stitch(toks, parts, spec.stats, layout)
            for toks, parts in zip(docs, per_doc, strict=True)]


def evaluate_tokens(
    model: TransformerBridge, docs: list[list[int]], spec: JobSpec,
    scorer: ScoreFn | None = None,
) -> list[DocMetrics]:
    """The per-document metrics of analyse_tokens (the summaries are computed all the same)."""
    return [evaluation.metrics for evaluation in analyse_tokens(model, docs, spec, scorer)]


def analyse_texts(
    model: TransformerBridge, texts: list[str], spec: JobSpec
) -> list[DocEvaluation]:
    return analyse_tokens(model, tokenize(model, texts, spec.prepend_bos), spec)


def evaluate_texts(model: TransformerBridge, texts: list[str], spec: JobSpec) -> list[DocMetrics]:
    return evaluate_tokens(model, tokenize(model, texts, spec.prepend_bos), spec)
