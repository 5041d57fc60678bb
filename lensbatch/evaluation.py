"""What the engine hands the store: one document's numbers, and a model's probe.

Plain data, no tensors: worker/engine computes them, lensbatch/store writes them, and
neither needs the other's imports. DocMetrics holds the stored metrics of
lensbatch/metrics.py's registry, in its order (tests/unit/test_registry.py checks).
"""

from __future__ import annotations

from dataclasses import dataclass


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
class InductionHit:
    position: int  # document position of the token that was predicted
    token: int
    novel: bool


@dataclass(frozen=True)
class DocEvaluation:
    """Everything a job keeps about one document."""

    metrics: DocMetrics
    # HEAD_SCORE_NAMES name -> [layer][head] value; None where the document has no
    # position to average over (no repeated token for induction_score, one token for prev).
    heads: dict[str, list[list[float | None]]]
    # hook -> statistic -> one value per group (per head, or a single value)
    stats: dict[str, dict[str, list[float]]]
    hits: list[InductionHit]


@dataclass(frozen=True)
class ProbeResult:
    """The repeated-random-tokens probe of one model (worker/engine/probe.py)."""

    n_tokens: int  # random tokens in each copy
    first_copy_loss: float
    second_copy_loss: float
    induction_scores: list[list[float]]  # [layer][head]
    prev_token_scores: list[list[float]]  # [layer][head]
