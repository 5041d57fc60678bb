"""Adaptive batching on CPU: an injected out-of-memory error halves the batch."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge

from lensbatch.jobspec import JobSpec
from worker.engine import evaluate
from worker.engine.adaptive import halve_on_oom
from worker.engine.batching import MIN_FILL, budget_batches
from worker.engine.evaluate import WindowScores, evaluate_tokens, score_windows, tokenize
from worker.engine.models import load_model
from worker.engine.reducer import BatchReducer
from worker.engine.windows import Window

TEXTS = [
    "The lighthouse keeper wrote in the log: the lamp is lit, the lamp is lit.",
    "Induction heads copy what followed a token the last time it appeared.",
    "Attention heads move information between positions of the residual stream.",
    "A short one.",
    "Batches that do not fit are halved and retried, never failed.",
    "Every metric stays the same whatever the batch size.",
]


class FailsAbove:
    """score_windows, except that the first `failures` batches of more than `limit`
    windows raise torch.OutOfMemoryError, as a CUDA allocation would."""

    def __init__(self, limit: int, failures: int = 1) -> None:
        self.limit, self.failures = limit, failures
        self.sizes: list[int] = []  # every batch size attempted, in order

    def __call__(self, model: TransformerBridge, windows: list[Window],
                 padding_side: str, reducer: BatchReducer) -> list[WindowScores]:
        self.sizes.append(len(windows))
        if len(windows) > self.limit and self.failures > 0:
            self.failures -= 1
            raise torch.OutOfMemoryError("injected: batch too large")
        return score_windows(model, windows, padding_side, reducer)


@pytest.fixture(scope="module")
def model(tiny_checkpoint: str) -> TransformerBridge:
    return load_model(tiny_checkpoint, "cpu", "float32")


def test_out_of_memory_halves_the_batch_and_keeps_every_metric(
    model: TransformerBridge, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A big budget and an accelerator's padding bound (a CPU's would batch these
    # documents of 4 to 20 tokens one by one): the documents share one batch.
    monkeypatch.setattr(evaluate, "batch_fill", lambda device: MIN_FILL)
    spec = JobSpec(batch_tokens=100_000)
    docs = tokenize(model, TEXTS, spec.prepend_bos)
    expected = evaluate_tokens(model, docs, spec)
    scorer = FailsAbove(limit=2, failures=3)
    got = evaluate_tokens(model, docs, spec, scorer=scorer)
    for a, b in zip(got, expected, strict=True):
        # Counts exact; the loss as close as padding to another width allows (design.md).
        assert a.nll_sum == pytest.approx(b.nll_sum, rel=1e-5)
        assert replace(a, nll_sum=0.0, loss=0.0) == replace(b, nll_sum=0.0, loss=0.0)
    first = scorer.sizes[0]
    assert first > 2
    # first batch fails, its halves are tried; each failure is followed by two halves
    assert scorer.sizes[1] == first // 2
    assert max(scorer.sizes[1:]) < first
    assert sum(s for s in scorer.sizes if s <= 2) >= len(docs) - 1


def test_single_window_out_of_memory_is_raised(model: TransformerBridge) -> None:
    scorer = FailsAbove(limit=0, failures=100)
    with pytest.raises(torch.OutOfMemoryError):
        evaluate_tokens(model, tokenize(model, TEXTS[:1], True), JobSpec(), scorer=scorer)
    assert scorer.sizes == [1]


def test_halving_keeps_order_and_passes_other_errors() -> None:
    calls: list[list[int]] = []

    def run(batch: list[int]) -> list[int]:
        calls.append(batch)
        if len(batch) > 1 and len(calls) == 1:
            raise torch.OutOfMemoryError("injected")
        if batch == [99]:
            raise ValueError("not memory")
        return [x * 10 for x in batch]

    assert halve_on_oom(run)([1, 2, 3, 4, 5]) == [10, 20, 30, 40, 50]
    assert calls == [[1, 2, 3, 4, 5], [1, 2], [3, 4, 5]]
    with pytest.raises(ValueError):
        halve_on_oom(run)([99])


def test_budget_batches_bound_padding() -> None:
    lengths = [1000, 990, 900, 400, 380, 30, 20, 10]
    batches = budget_batches(lengths, budget=100_000, min_fill=0.75)
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert sum(lengths[i] for i in batch) >= 0.75 * len(batch) * longest
    assert batches[0][:3] == [0, 1, 2]  # similar lengths still share a batch
    assert len(batches) > 1
    assert len(budget_batches(lengths, budget=100_000, min_fill=0.0)) == 1
