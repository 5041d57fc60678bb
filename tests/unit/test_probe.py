"""The induction probe against TransformerLens's own head detector, on the same input."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import head_detector
from transformer_lens.model_bridge import TransformerBridge

from worker.engine.models import load_model
from worker.engine.probe import N_COPY, probe_tokens, run_probe


def detect(model: TransformerBridge, tokens: torch.Tensor, name: head_detector.HeadName,
           monkeypatch: pytest.MonkeyPatch) -> torch.Tensor:
    """head_detector.detect_head on exactly these tokens: it tokenizes a string itself,
    and random tokens do not survive decoding and encoding again."""
    with monkeypatch.context() as patch:
        patch.setattr(model, "to_tokens", lambda seq, **kwargs: tokens)
        return head_detector.detect_head(model, "the probe's tokens", name, exclude_bos=True)


@pytest.mark.parametrize("name", ["toy-induction", "tiny"])
def test_probe_scores_agree_with_detect_head(name: str, tiny_checkpoint: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model(tiny_checkpoint if name == "tiny" else name, "cpu", "float32")
    probe = run_probe(model)
    tokens = probe_tokens(model)
    induction = detect(model, tokens, "induction_head", monkeypatch)
    previous = detect(model, tokens, "previous_token_head", monkeypatch)
    torch.testing.assert_close(torch.tensor(probe.induction_scores), induction.float(),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.tensor(probe.prev_token_scores), previous.float(),
                               rtol=1e-5, atol=1e-6)


def test_probe_input_is_bos_then_the_same_random_tokens_twice(tiny_checkpoint: str) -> None:
    toy = load_model("toy-induction", "cpu", "float32")
    tokens = probe_tokens(toy)[0]
    n = N_COPY
    assert tokens.shape[0] == 1 + 2 * n and tokens[0] == 50256
    assert torch.equal(tokens[1:n + 1], tokens[n + 1:])
    assert len(set(tokens[1:n + 1].tolist())) == n and 50256 not in tokens[1:].tolist()
    assert torch.equal(tokens, probe_tokens(toy)[0])  # seeded
    tiny = load_model(tiny_checkpoint, "cpu", "float32")  # n_ctx 64: shorter copies
    assert probe_tokens(tiny).shape[1] < tiny.cfg.n_ctx
