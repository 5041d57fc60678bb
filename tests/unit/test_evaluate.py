"""The worker's numbers against Hugging Face transformers and against itself."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import GPT2LMHeadModel

from lensbatch.jobspec import JobSpec
from lensbatch.metrics import HEAD_SCORE_NAMES
from tests.unit.test_windows_batching import scored_pairs
from worker.engine import unembed
from worker.engine.evaluate import (
    DocMetrics,
    analyse_tokens,
    evaluate_texts,
    evaluate_tokens,
    tokenize,
)
from worker.engine.models import load_model

TEXTS = [
    "Hello TransformerLens!",
    "The lighthouse keeper wrote in the log: the lamp is lit, the lamp is lit, all is well.",
    "Induction heads copy what followed a token last time it appeared in the context.",
    "A",
]


@pytest.fixture(scope="module")
def model(tiny_checkpoint: str):  # type: ignore[no-untyped-def]
    return load_model(tiny_checkpoint, "cpu", "float32")


def close(a: DocMetrics, b: DocMetrics, rel: float = 1e-5) -> None:
    assert a.n_tokens == b.n_tokens
    assert a.n_predictions == b.n_predictions
    assert a.n_correct == b.n_correct
    assert (a.induction_candidates, a.induction_hits, a.induction_novel_hits) == (
        b.induction_candidates, b.induction_hits, b.induction_novel_hits)
    assert a.nll_sum == pytest.approx(b.nll_sum, rel=rel)


def test_loss_equals_transformers_loss(model, tiny_checkpoint: str) -> None:  # type: ignore[no-untyped-def]
    hf = GPT2LMHeadModel.from_pretrained(tiny_checkpoint, attn_implementation="eager").eval()
    text = TEXTS[1]
    ids = tokenize(model, [text], prepend_bos=True)[0]
    assert len(ids) <= model.cfg.n_ctx  # one window, so the losses are comparable
    with torch.no_grad():
        expected = hf(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    (metrics,) = evaluate_texts(model, [text], JobSpec())
    assert metrics.loss == pytest.approx(expected, abs=1e-4)
    assert metrics.n_tokens == len(ids) and metrics.n_predictions == len(ids) - 1


def test_bos_is_prepended_as_in_the_seed_notebook(model) -> None:  # type: ignore[no-untyped-def]
    assert tokenize(model, ["Hello TransformerLens!"], True)[0] == [
        50256, 15496, 3602, 16354, 49479, 0]
    assert tokenize(model, ["Hello TransformerLens!"], False)[0] == [
        15496, 3602, 16354, 49479, 0]


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("budget", [64, 200, 100000])
def test_batch_and_padding_do_not_change_metrics(model, side: str, budget: int) -> None:  # type: ignore[no-untyped-def]
    alone = [evaluate_texts(model, [t], JobSpec(batch_tokens=1))[0] for t in TEXTS]
    spec = JobSpec(batch_tokens=budget, padding_side=side)
    together = evaluate_texts(model, TEXTS, spec)
    for a, b in zip(alone, together, strict=True):
        close(a, b)


def test_long_document_matches_stitched_reference(model) -> None:  # type: ignore[no-untyped-def]
    """Score each window separately by hand and stitch: the totals must agree."""
    ids = tokenize(model, [" ".join(TEXTS[1:3]) * 4], prepend_bos=True)[0]
    n_ctx, stride = model.cfg.n_ctx, 24
    assert len(ids) > 2 * n_ctx
    (metrics,) = evaluate_tokens(model, [ids], JobSpec(stride=stride))
    nll_total, correct_total, scored, start, reached = 0.0, 0, 0, 0, 0
    while reached < len(ids) - 1:
        window = ids[start:start + n_ctx]
        with torch.inference_mode():
            logits = model(torch.tensor([window]), return_type="logits")[0]
        logprobs = torch.log_softmax(logits.double(), dim=-1)
        for p in range(len(window) - 1):
            if start + p + 1 > reached:
                nll_total -= float(logprobs[p, window[p + 1]])
                correct_total += int(logits[p].argmax() == window[p + 1])
                scored += 1
        reached = start + len(window) - 1
        start += stride
    assert metrics.n_windows > 2
    assert metrics.n_predictions == scored == len(ids) - 1
    assert metrics.nll_sum == pytest.approx(nll_total, rel=1e-5)
    assert metrics.n_correct == correct_total


def test_induction_counts_only_what_the_window_sees(model) -> None:  # type: ignore[no-untyped-def]
    """A bigram repeated farther apart than the context is no candidate."""
    n_ctx = model.cfg.n_ctx
    filler = list(range(1000, 1000 + 2 * n_ctx))  # distinct tokens: no repeated bigrams
    ids = [50256, 7, 8, *filler, 7, 8]
    (far,) = evaluate_tokens(model, [ids], JobSpec(stride=n_ctx // 2))
    (near,) = evaluate_tokens(model, [[50256, 7, 8, 9, 7, 8]], JobSpec())
    assert far.induction_candidates == 0
    assert near.induction_candidates == 1


def test_single_token_document_has_no_predictions(model) -> None:  # type: ignore[no-untyped-def]
    (metrics,) = evaluate_tokens(model, [[50256]], JobSpec())
    assert metrics.n_predictions == 0 and metrics.loss is None and metrics.accuracy is None
    assert not math.isnan(metrics.nll_sum)


def test_disjoint_windows_score_what_lm_eval_scores(model) -> None:  # type: ignore[no-untyped-def]
    """Each (context, continuation) pair of lm-eval's rolling windows scored as lm-eval
    scores it: the model reads (context + continuation)[:-1] and the last
    len(continuation) positions predict the continuation."""
    ids = tokenize(model, [" ".join(TEXTS[1:3]) * 4], prepend_bos=True)[0]
    n_ctx = model.cfg.n_ctx
    assert len(ids) > 2 * n_ctx + 1
    (metrics,) = evaluate_tokens(model, [ids], JobSpec(windows="disjoint", batch_tokens=300))
    pairs = scored_pairs(ids, n_ctx)
    nll_total, correct_total = 0.0, 0
    for context, continuation in pairs:
        read = (context + continuation)[:-1]
        assert len(read) <= n_ctx
        with torch.inference_mode():
            logits = model(torch.tensor([read]), return_type="logits")[0, -len(continuation):]
        logprobs = torch.log_softmax(logits.double(), dim=-1)
        for p, target in enumerate(continuation):
            nll_total -= float(logprobs[p, target])
            correct_total += int(logits[p].argmax() == target)
    assert metrics.n_windows == len(pairs) > 2
    assert metrics.n_predictions == sum(len(c) for _, c in pairs) == len(ids) - 1
    assert metrics.nll_sum == pytest.approx(nll_total, rel=1e-5)
    assert metrics.n_correct == correct_total


def test_behaviour_only_keeps_every_metric_without_head_summaries(model) -> None:  # type: ignore[no-untyped-def]
    docs = tokenize(model, [*TEXTS, " ".join(TEXTS[1:3]) * 4], prepend_bos=True)
    full = analyse_tokens(model, docs, JobSpec(batch_tokens=200))
    behaviour = analyse_tokens(model, docs, JobSpec(batch_tokens=200, heads=False))
    for a, b in zip(full, behaviour, strict=True):
        assert (a.metrics, a.hits) == (b.metrics, b.hits)
        assert b.heads == {name: [] for name in HEAD_SCORE_NAMES}
    assert any(v is not None for v in full[1].heads["prev_token_score"][0])


def test_full_logits_never_exist(model, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The forward pass unembeds one position per row; the scored positions go through
    the unembedding in chunks, whose size changes no metric."""
    docs = tokenize(model, TEXTS, prepend_bos=True)
    expected = evaluate_tokens(model, docs, JobSpec(batch_tokens=500))
    assert unembed.unembedding(model) is not None
    shapes: list[tuple[int, ...]] = []
    monkeypatch.setattr(unembed, "CHUNK_ELEMENTS", 3 * model.cfg.d_vocab)  # 3 positions
    with model.hooks(fwd_hooks=[("unembed.hook_out", lambda t, hook: shapes.append(t.shape))]):
        found = evaluate_tokens(model, docs, JobSpec(batch_tokens=500))
    assert shapes and all(shape[1] == 1 for shape in shapes)
    for a, b in zip(found, expected, strict=True):
        close(a, b)


def test_logits_that_are_not_linear_in_the_residual_come_from_the_forward(model) -> None:  # type: ignore[no-untyped-def]
    """A model that scales its logits after the unembedding (as some architectures do)
    is scored on the logits of its forward pass."""
    def scaled(logits: torch.Tensor, hook: object) -> torch.Tensor:
        return 2 * logits

    ids = tokenize(model, [TEXTS[1]], prepend_bos=True)[0]
    unembed.unembedding.cache_clear()
    try:
        with model.hooks(fwd_hooks=[("unembed.hook_out", scaled)]):
            assert unembed.unembedding(model) is None
            (metrics,) = evaluate_tokens(model, [ids], JobSpec())
            with torch.inference_mode():
                logits = model(torch.tensor([ids]), return_type="logits")[0]
    finally:
        unembed.unembedding.cache_clear()
    logprobs = torch.log_softmax(logits.double(), dim=-1)[:-1]
    expected = -float(logprobs.gather(-1, torch.tensor(ids[1:])[:, None]).sum())
    assert metrics.nll_sum == pytest.approx(expected, rel=1e-5)
    assert unembed.unembedding(model) is not None
