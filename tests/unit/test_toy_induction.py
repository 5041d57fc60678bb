"""toy-induction does what its construction promises, with no training."""

from __future__ import annotations

import math
import time

import pytest
import torch

from lensbatch.jobspec import JobSpec
from worker.engine import toy_induction
from worker.engine.evaluate import analyse_tokens
from worker.engine.models import load_model
from worker.engine.probe import run_probe
from worker.engine.token_metrics import next_token_nll

LN_VOCAB = math.log(50257)


@pytest.fixture(scope="module")
def toy():  # type: ignore[no-untyped-def]
    return load_model("toy-induction", "cpu", "float32")


def scored(grid: list[list[float | None]]) -> list[list[float]]:
    """A [layer][head] grid in which every head has a score, as it must for a document
    with repeated tokens."""
    assert all(score is not None for row in grid for score in row)
    return [[score for score in row if score is not None] for row in grid]


def repeated_random(seed: int, n: int = 100) -> torch.Tensor:  # [1 + 2n]: [BOS] + X + X
    x = torch.randint(0, 50256, (n,), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.tensor([toy_induction.BOS_ID]), x, x])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_second_copy_is_predicted_first_is_not(toy, seed: int) -> None:  # type: ignore[no-untyped-def]
    tokens = repeated_random(seed)
    with torch.inference_mode():
        nll = next_token_nll(toy(tokens[None], return_type="logits"), tokens[None])[0]
    first, second = nll[:100].mean().item(), nll[100:].mean().item()  # every target of a copy
    assert second < 1.0
    assert first > LN_VOCAB - 0.05


def test_wired_heads_score_highest(toy) -> None:  # type: ignore[no-untyped-def]
    probe = run_probe(toy)
    induction = torch.tensor(probe.induction_scores)
    previous = torch.tensor(probe.prev_token_scores)
    assert divmod(int(induction.argmax()), toy.cfg.n_heads) == toy_induction.INDUCTION_HEAD
    assert divmod(int(previous.argmax()), toy.cfg.n_heads) == toy_induction.PREV_TOKEN_HEAD
    assert induction.max() > 0.99 and previous.max() > 0.99
    assert probe.second_copy_loss < 0.01 < LN_VOCAB - 0.05 < probe.first_copy_loss


def test_document_summaries_single_out_the_wired_heads(toy) -> None:  # type: ignore[no-untyped-def]
    (evaluation,) = analyse_tokens(toy, [repeated_random(7, 40).tolist()], JobSpec())
    layer, head = toy_induction.INDUCTION_HEAD
    induction = scored(evaluation.heads["induction_score"])
    assert induction[layer][head] == max(max(row) for row in induction) > 0.99
    layer, head = toy_induction.PREV_TOKEN_HEAD
    previous = scored(evaluation.heads["prev_token_score"])
    assert previous[layer][head] == max(max(row) for row in previous) > 0.99
    assert evaluation.metrics.induction_hits == evaluation.metrics.induction_candidates == 39


def test_builds_in_seconds_and_deterministically() -> None:
    started = time.perf_counter()
    a = toy_induction.build(torch.device("cpu"), torch.float32)
    assert time.perf_counter() - started < 30
    b = toy_induction.build(torch.device("cpu"), torch.float32)
    state_a, state_b = a.original_model.state_dict(), b.original_model.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    # The weights are where the bridge reads them, not lost in derived tensors.
    assert torch.equal(a.W_E, b.W_E) and a.W_E.abs().max() > 0


def test_attention_only_gpt2_vocabulary(toy) -> None:  # type: ignore[no-untyped-def]
    assert toy.cfg.d_vocab == 50257 and toy.cfg.n_layers == 2
    assert not any(".mlp." in name for name in toy.hook_dict)
    ids = toy.tokenizer("Hello TransformerLens!", add_special_tokens=False)["input_ids"]
    assert ids == [15496, 3602, 16354, 49479, 0]
