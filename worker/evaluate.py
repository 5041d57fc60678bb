"""Evaluate documents with a TransformerLens bridge: the pure core of a worker's task.

texts -> tokens (BOS prepended if asked) -> windows -> length-sorted padded batches ->
one forward pass per batch -> per-position metrics -> stitched back per document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformer_lens.model_bridge import TransformerBridge

from lensbatch.jobspec import JobSpec
from worker.adaptive import halve_on_oom
from worker.batching import map_in_length_batches, pad
from worker.metrics import (
    earlier_bigram_position,
    induction_counts,
    next_token_correct,
    next_token_nll,
)
from worker.windows import Window, split_windows


@dataclass(frozen=True)
class DocMetrics:
    n_tokens: int
    n_predictions: int
    nll_sum: float
    loss: float | None
    n_correct: int
    accuracy: float | None
    induction_candidates: int
    induction_hits: int
    induction_novel_hits: int
    n_windows: int


@dataclass(frozen=True)
class WindowScores:
    """The scored positions of one window, in document coordinates."""

    nll: torch.Tensor  # [n_scored], float32
    correct: torch.Tensor  # [n_scored], bool
    earlier: torch.Tensor  # [n_scored], int64: document position of the bigram's first
    #                        occurrence inside the window, or -1


def tokenize(model: TransformerBridge, texts: list[str], prepend_bos: bool) -> list[list[int]]:
    """Token ids per text; never truncated (long documents are windowed instead)."""
    tokenizer = model.tokenizer
    ids: list[list[int]] = tokenizer(texts, add_special_tokens=False)["input_ids"]
    if prepend_bos:
        bos = tokenizer.bos_token_id
        ids = [[bos, *row] for row in ids]
    return ids


def score_windows(
    model: TransformerBridge, windows: list[Window], padding_side: str
) -> list[WindowScores]:
    """One forward pass over a padded batch of windows."""
    device = model.cfg.device
    pad_id = model.tokenizer.pad_token_id or 0
    tokens, mask, offsets = pad([w.tokens for w in windows], pad_id, padding_side)
    tokens, mask = tokens.to(device), mask.to(device)
    logits = model(tokens, attention_mask=mask, return_type="logits")  # [batch, pos, d_vocab]
    nll = next_token_nll(logits, tokens).cpu()  # [batch, pos - 1]
    correct = next_token_correct(logits, tokens).cpu()  # [batch, pos - 1]
    del logits
    scores = []
    for row, window in enumerate(windows):
        first = int(offsets[row]) + window.score_from
        last = int(offsets[row]) + len(window.tokens) - 1  # exclusive: last token predicts nothing
        earlier = earlier_bigram_position(torch.tensor(window.tokens))[window.score_from:]
        earlier = torch.where(earlier >= 0, earlier + window.start, earlier)
        scores.append(WindowScores(nll[row, first:last], correct[row, first:last], earlier))
    return scores


def _stitch(n_tokens: int, parts: list[WindowScores]) -> DocMetrics:
    nll = torch.cat([p.nll for p in parts]) if parts else torch.empty(0)
    correct = torch.cat([p.correct for p in parts]) if parts else torch.empty(0, dtype=torch.bool)
    earlier = torch.cat([p.earlier for p in parts]) if parts else torch.empty(0, dtype=torch.long)
    n_predictions = int(nll.shape[0])
    if n_predictions != max(n_tokens - 1, 0):
        raise AssertionError(f"scored {n_predictions} positions for {n_tokens} tokens")
    nll_sum = float(nll.double().sum())
    n_correct = int(correct.sum())
    candidates, hits, novel = induction_counts(correct, earlier)
    return DocMetrics(
        n_tokens=n_tokens,
        n_predictions=n_predictions,
        nll_sum=nll_sum,
        loss=nll_sum / n_predictions if n_predictions else None,
        n_correct=n_correct,
        accuracy=n_correct / n_predictions if n_predictions else None,
        induction_candidates=candidates,
        induction_hits=hits,
        induction_novel_hits=novel,
        n_windows=len(parts),
    )


# How a batch of windows is scored: score_windows, or a wrapper of it (tests inject
# out-of-memory failures through this).
ScoreFn = Callable[[TransformerBridge, list[Window], str], list[WindowScores]]


def evaluate_tokens(
    model: TransformerBridge, docs: list[list[int]], spec: JobSpec, *,
    scorer: ScoreFn | None = None,
) -> list[DocMetrics]:
    """Metrics for each token sequence, in order, whatever the batching.

    A batch that runs out of accelerator memory is halved and retried (worker.adaptive).
    """
    score_fn = scorer or score_windows
    n_ctx = int(model.cfg.n_ctx)
    stride = spec.stride or n_ctx // 2
    windows = [w for i, toks in enumerate(docs) for w in split_windows(i, toks, n_ctx, stride)]
    with torch.inference_mode():
        scores = map_in_length_batches(
            windows,
            [len(w.tokens) for w in windows],
            spec.batch_tokens,
            halve_on_oom(lambda batch: score_fn(model, batch, spec.padding_side)),
        )
    per_doc: list[list[WindowScores]] = [[] for _ in docs]
    for window, score in zip(windows, scores, strict=True):
        per_doc[window.doc].append(score)
    return [_stitch(len(toks), parts) for toks, parts in zip(docs, per_doc, strict=True)]


def evaluate_texts(model: TransformerBridge, texts: list[str], spec: JobSpec) -> list[DocMetrics]:
    return evaluate_tokens(model, tokenize(model, texts, spec.prepend_bos), spec)
