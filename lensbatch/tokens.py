"""One document token by token: what `lensbatch tokens` prints and the report colours.

Plain data (worker/engine/token_view.py computes it). Position p's loss is the
cross-entropy of predicting token p from the tokens before it, so the first token has
none, and the per-token numbers add up to the document's stored metrics (totals()).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TokenScore:
    position: int  # in the evaluated sequence (BOS is 0 when prepended)
    token_id: int
    text: str  # the token decoded on its own
    loss: float | None  # nats; None for the first token, which nothing predicts
    correct: bool | None  # the argmax prediction was this token
    candidate: bool  # induction candidate: (previous token, this token) occurred earlier
    hit: bool  # a candidate predicted correctly
    novel: bool  # a hit whose bigram's first occurrence was predicted wrongly

    @property
    def induction(self) -> str:
        """'-', 'candidate', 'hit' or 'novel hit'."""
        if self.novel:
            return "novel hit"
        return "hit" if self.hit else "candidate" if self.candidate else "-"


# The stored metrics (lensbatch/metrics.py) the token numbers add up to.
TOTALS = ("n_tokens", "n_predictions", "nll_sum", "n_correct", "induction_candidates",
          "induction_hits", "induction_novel_hits")


def totals(tokens: Sequence[TokenScore]) -> dict[str, float]:
    """The per-token numbers summed, keyed like the document's stored metrics."""
    scored = [t for t in tokens if t.loss is not None]
    return {
        "n_tokens": len(tokens),
        "n_predictions": len(scored),
        "nll_sum": sum(t.loss for t in scored if t.loss is not None),
        "n_correct": sum(1 for t in scored if t.correct),
        "induction_candidates": sum(1 for t in tokens if t.candidate),
        "induction_hits": sum(1 for t in tokens if t.hit),
        "induction_novel_hits": sum(1 for t in tokens if t.novel),
    }


PERCENTILES = (5.0, 95.0)  # a colour scale runs over this share of the tokens' losses


@dataclass(frozen=True)
class LossScale:
    """The token colours' range in nats: white at `low` and under, strong red at `high`
    and over. From the job's own losses, so a model that is poor everywhere (random
    weights, ~11 nats a token) still shows which tokens are hardest."""

    low: float
    high: float

    def share(self, loss: float | None) -> float:
        if loss is None:
            return 0.0
        return max(0.0, min((loss - self.low) / (self.high - self.low), 1.0))


def loss_scale(losses: Sequence[float]) -> LossScale:
    """The PERCENTILES of `losses` (per-token losses, nats); one unit wide around a
    single value, and 0..1 with no loss at all."""
    if not losses:
        return LossScale(0.0, 1.0)
    low, high = (float(v) for v in np.percentile(np.asarray(losses), PERCENTILES))
    if high - low < 1e-6:
        return LossScale(low - 0.5, high + 0.5)
    return LossScale(low, high)
