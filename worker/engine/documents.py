"""What one document's windows add up to: its metrics, head summaries, activation
statistics and induction hits.

This runs on the CPU once per document, after the batches, so it works on numpy arrays:
a few microseconds per operation where tensor operations on tiny tensors cost ten.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lensbatch.evaluation import DocEvaluation, DocMetrics, InductionHit
from lensbatch.metrics import HEAD_SCORE_NAMES
from worker.engine.summaries import combine_moments, finish_stats


@dataclass(frozen=True)
class WindowScores:
    """The scored positions of one window, in document coordinates, and its sums."""

    nll: np.ndarray  # [n_scored] float32
    correct: np.ndarray  # [n_scored] bool
    earlier: np.ndarray  # [n_scored] int64: document position of the bigram's first
    #                      occurrence inside the window, or -1
    head_sums: np.ndarray  # [attention layer, 4, head] float32 (HeadLayout.layers),
    #                        HEAD_SCORE_NAMES summed over positions
    head_counts: np.ndarray  # [4] int64: positions behind each of those sums
    moments: dict[str, np.ndarray]  # hook -> [group, MOMENTS]


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


@dataclass(frozen=True)
class Scored:
    """One document's scored positions, joined over its windows."""

    nll: np.ndarray  # [n_predictions] float32
    correct: np.ndarray  # [n_predictions] bool
    earlier: np.ndarray  # [n_predictions] int64, -1 where the bigram is new
    hits: np.ndarray  # [n_predictions] bool
    novel: np.ndarray  # [n_predictions] bool


def doc_metrics(n_tokens: int, scored: Scored, n_windows: int) -> DocMetrics:
    nll, correct, earlier, hits, novel = (scored.nll, scored.correct, scored.earlier,
                                          scored.hits, scored.novel)
    n_predictions = int(nll.shape[0])
    if n_predictions != max(n_tokens - 1, 0):
        raise AssertionError(f"scored {n_predictions} positions for {n_tokens} tokens")
    nll_sum = float(nll.sum(dtype=np.float64))
    n_correct = int(correct.sum())
    return DocMetrics(
        n_tokens=n_tokens,
        n_predictions=n_predictions,
        nll_sum=nll_sum,
        loss=nll_sum / n_predictions if n_predictions else None,
        n_correct=n_correct,
        accuracy=n_correct / n_predictions if n_predictions else None,
        induction_candidates=int((earlier >= 0).sum()),
        induction_hits=int(hits.sum()),
        induction_novel_hits=int(novel.sum()),
        n_windows=n_windows,
    )


def induction_hits(correct: np.ndarray, earlier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hits, novel hits), both bool: a hit is a candidate (earlier >= 0) predicted
    correctly; a novel hit is one whose bigram's first occurrence was predicted wrongly
    (the seed notebook's 'ooked', 'Trans', 'former')."""
    hits = (earlier >= 0) & correct
    first_correct = correct[np.maximum(earlier, 0)] if len(correct) else correct
    return hits, hits & ~first_correct


@dataclass(frozen=True)
class HeadLayout:
    """Which layers have attention heads: WindowScores.head_sums holds those layers, in
    this order; a document's head values list every layer, [] for one without heads."""

    n_layers: int
    layers: tuple[int, ...]


def head_values(parts: list[WindowScores],
                layout: HeadLayout) -> dict[str, list[list[float | None]]]:
    sums = sum((p.head_sums.astype(np.float64) for p in parts[1:]),
               parts[0].head_sums.astype(np.float64))  # [attention layer, 4, head]
    counts = sum((p.head_counts for p in parts[1:]), parts[0].head_counts)  # [4]
    values: dict[str, list[list[float | None]]] = {}
    for index, field in enumerate(HEAD_SCORE_NAMES):
        n = int(counts[index])
        found: list[list[float | None]] = (sums[:, index] / max(n, 1)).tolist()
        per_layer: list[list[float | None]] = [[] for _ in range(layout.n_layers)]
        for layer, heads in zip(layout.layers, found, strict=True):
            per_layer[layer] = heads if n else [None] * len(heads)
        values[field] = per_layer
    return values


def scored_positions(parts: list[WindowScores]) -> Scored:
    """A document's scored positions, from its windows' scores in document order."""
    correct = _joined([p.correct for p in parts])
    earlier = _joined([p.earlier for p in parts])
    hits, novel = induction_hits(correct, earlier)
    return Scored(_joined([p.nll for p in parts]), correct, earlier, hits, novel)


def stitch(tokens: list[int], parts: list[WindowScores], stats: tuple[str, ...],
           layout: HeadLayout) -> DocEvaluation:
    """One document from its windows' scores, in document order."""
    scored = scored_positions(parts)
    hit_list = [InductionHit(position=i + 1, token=tokens[i + 1], novel=bool(scored.novel[i]))
                for i in np.flatnonzero(scored.hits).tolist()]
    return DocEvaluation(
        metrics=doc_metrics(len(tokens), scored, len(parts)),
        heads=head_values(parts, layout),
        stats={name: finish_stats(combine_moments([p.moments[name] for p in parts]), stats)
               for name in parts[0].moments},
        hits=hit_list,
    )
