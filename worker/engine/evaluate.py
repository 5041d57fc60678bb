"""Evaluate documents with a TransformerLens bridge: the pure core of a worker's task.

texts -> tokens (BOS by the model's rule; long texts in pieces) -> windows
(worker/engine/windows.py) -> length-sorted padded batches -> one forward pass per batch
(worker/engine/forward.py), whose hooks reduce attention patterns and the selected
activations as they pass (worker/engine/reducer.py), with the losses and accuracies of
the scored positions read from the final residual stream in chunks
(worker/engine/unembed.py) -> per-window sums -> stitched back per document.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformer_lens.model_bridge import TransformerBridge

from lensbatch.evaluation import DocEvaluation, DocMetrics, InductionHit
from lensbatch.jobspec import JobSpec
from lensbatch.top import HookTop
from worker.engine.adaptive import halve_on_oom, release_cached_memory
from worker.engine.attention_mode import summaries_to
from worker.engine.batching import batch_budget, batch_fill, budget_batches
from worker.engine.card import attention_layers
from worker.engine.documents import HeadLayout, WindowScores, stitch
from worker.engine.forward import LaunchedBatch, collect_windows, launch_windows
from worker.engine.models import resolve_hooks, resolve_top_hooks
from worker.engine.reducer import BatchReducer
from worker.engine.tokenizer import bridge_tokens
from worker.engine.top_activations import TopAccumulator
from worker.engine.unembed import unembedding
from worker.engine.windows import Window, document_windows

__all__ = ["DocEvaluation", "DocMetrics", "InductionHit", "WindowScores", "analyse_texts",
           "analyse_tokens", "evaluate_texts", "evaluate_tokens", "score_windows", "tokenize"]


def tokenize(model: TransformerBridge, texts: list[str],
             prepend_bos: bool | None) -> list[list[int]]:
    """Token ids per text as TransformerLens's to_tokens gives them, BOS by the model's
    rule unless prepend_bos says otherwise; never truncated (long documents are windowed
    instead). worker/engine/tokenizer.py bridge_tokens has the rules."""
    return bridge_tokens(model, texts, prepend_bos)


def score_windows(
    model: TransformerBridge, windows: list[Window], padding_side: str,
    reducer: BatchReducer | None = None,
) -> list[WindowScores]:
    """One forward pass over a padded batch of windows, waited for. Without a reducer
    whose hooks are on, one without activations is made and hooked for this batch."""
    if reducer is not None:
        return collect_windows(launch_windows(model, windows, padding_side, reducer))
    reducer = BatchReducer(attention_layers(model), [], ())
    unembedding(model)  # checked once per model, before any reducing hook is on
    with torch.inference_mode(), model.hooks(fwd_hooks=reducer.fwd_hooks()), \
            summaries_to(reducer):
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
    device = model.cfg.device or "cpu"
    budget = batch_budget(spec.batch_tokens, device)
    for batch in budget_batches([w.length for w in windows], budget, batch_fill(device)):
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


def head_layout(model: TransformerBridge, spec: JobSpec) -> HeadLayout:
    """The layers whose heads a job summarises: the attention layers, or none for a
    behaviour-only job."""
    if not spec.heads:
        return HeadLayout(0, ())
    return HeadLayout(int(model.cfg.n_layers), attention_layers(model))


def scored_windows(
    model: TransformerBridge, docs: list[list[int]], spec: JobSpec,
    scorer: ScoreFn | None = None, top: TopAccumulator | None = None,
) -> list[list[WindowScores]]:
    """Every sequence's windows, scored in batches, in document order per sequence;
    `top` gathers the top activations of its hooks on the way."""
    n_ctx = int(model.cfg.n_ctx)
    reducer = BatchReducer(head_layout(model, spec).layers,
                           resolve_hooks(model, spec.activations), spec.stats, top)
    windows = [w for i, toks in enumerate(docs)
               for w in document_windows(i, toks, n_ctx, spec.windows, spec.stride)]
    unembedding(model)  # checked once per model, before any reducing hook is on
    with torch.inference_mode(), model.hooks(fwd_hooks=reducer.fwd_hooks()), \
            summaries_to(reducer):
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
    per_doc = scored_windows(model, docs, spec, scorer)
    layout = head_layout(model, spec)
    return [stitch(toks, parts, spec.stats, layout)
            for toks, parts in zip(docs, per_doc, strict=True)]


def analyse_tokens_top(
    model: TransformerBridge, docs: list[list[int]], spec: JobSpec, seqs: list[int],
) -> tuple[list[DocEvaluation], list[HookTop]]:
    """analyse_tokens, and the top activations of the job's --top-activations hooks
    over these documents (the job's document numbers `seqs`, ascending)."""
    hooks = resolve_top_hooks(model, spec.top_activations)
    top = TopAccumulator(hooks, spec.top_k, [len(toks) for toks in docs]) if hooks else None
    per_doc = scored_windows(model, docs, spec, None, top)
    layout = head_layout(model, spec)
    evaluations = [stitch(toks, parts, spec.stats, layout)
                   for toks, parts in zip(docs, per_doc, strict=True)]
    return evaluations, [] if top is None else top.result(seqs)


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


def analyse_texts_top(
    model: TransformerBridge, texts: list[str], spec: JobSpec, seqs: list[int],
) -> tuple[list[DocEvaluation], list[HookTop]]:
    return analyse_tokens_top(model, tokenize(model, texts, spec.prepend_bos), spec, seqs)


def evaluate_texts(model: TransformerBridge, texts: list[str], spec: JobSpec) -> list[DocMetrics]:
    return evaluate_tokens(model, tokenize(model, texts, spec.prepend_bos), spec)
