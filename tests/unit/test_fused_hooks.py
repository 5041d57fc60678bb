"""Hooks under the fused attention path: whatever hooks hook_pattern or hook_attn_scores
gets them as on TransformerLens's own path, and every other hook point still fires,
with the same values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from lensbatch.jobspec import JobSpec
from tests.matrix import TEXTS, max_relative
from tests.unit.test_fused_attention import module_calls, worst_difference
from worker.engine.attention_mode import attention_mode
from worker.engine.evaluate import analyse_tokens, tokenize
from worker.engine.models import load_model

# One per way in: JointQKV (plain and rotary) and position-embeddings attention with
# grouped-query heads and a sliding window, with QK norms after (qwen3) and before
# (olmo2) the heads are split.
NAMES = ["gpt2", "gpt-neox", "llama", "qwen2", "qwen3", "olmo2"]
PATTERN_OR_SCORES = (".hook_pattern", ".hook_attn_scores")


def load(name: str, matrix_checkpoint: Callable[[str], str]) -> tuple[Any, torch.Tensor]:
    model = load_model(matrix_checkpoint(name), "cpu", "float32")
    docs = tokenize(model, TEXTS[:2], None)
    length = min(len(d) for d in docs)
    return model, torch.tensor([d[:length] for d in docs])


@pytest.mark.parametrize("name", NAMES)
def test_other_hook_points_fire_with_the_same_values(
        name: str, matrix_checkpoint: Callable[[str], str]) -> None:
    model, tokens = load(name, matrix_checkpoint)
    caches, fired = {}, {}
    for mode in ("eager", "fused"):
        with attention_mode(mode), module_calls(model) as seen, torch.inference_mode():
            _, cache = model.run_with_cache(
                tokens, names_filter=lambda hook: not hook.endswith(PATTERN_OR_SCORES))
        caches[mode], fired[mode] = cache, set(seen)
    assert not any(n.endswith(".hook_pattern") for n in fired["fused"])  # fused really ran
    expected = {n for n in fired["eager"] if not n.endswith(PATTERN_OR_SCORES)}
    assert expected <= fired["fused"]
    assert set(caches["eager"].keys()) == set(caches["fused"].keys())
    for hook in ("blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v",
                 "blocks.0.attn.hook_z", "blocks.1.hook_resid_post"):
        assert hook in caches["fused"]
    if name in ("qwen3", "olmo2"):
        assert "blocks.0.attn.hook_q_normed" in caches["fused"]
    for key in caches["eager"].keys():
        torch.testing.assert_close(caches["fused"][key], caches["eager"][key],
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_a_pattern_hook_gets_the_pattern(name: str,
                                         matrix_checkpoint: Callable[[str], str]) -> None:
    """A hook on hook_pattern (or hook_attn_scores) sends its layer down TransformerLens's
    path in fused mode: it sees the whole pattern, the same as in eager mode."""
    model, tokens = load(name, matrix_checkpoint)
    found: dict[str, dict[str, torch.Tensor]] = {}
    for mode in ("eager", "fused"):
        kept: dict[str, torch.Tensor] = {}

        def keep(tensor: torch.Tensor, hook: Any, into: dict[str, torch.Tensor] = kept) -> None:
            into[hook.name] = tensor.clone()

        hooks = [("blocks.1.attn.hook_pattern", keep), ("blocks.0.attn.hook_attn_scores", keep)]
        with attention_mode(mode), torch.inference_mode(), model.hooks(fwd_hooks=hooks):
            model(tokens, return_type=None)
        found[mode] = kept
    assert found["fused"].keys() == found["eager"].keys() == {
        "blocks.1.attn.hook_pattern", "blocks.0.attn.hook_attn_scores"}
    pattern = found["fused"]["blocks.1.attn.hook_pattern"]
    assert pattern.shape == (tokens.shape[0], int(model.cfg.n_heads), tokens.shape[1],
                             tokens.shape[1])
    torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]))
    for key, value in found["eager"].items():
        torch.testing.assert_close(found["fused"][key], value)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_a_pattern_job_falls_back(name: str, matrix_checkpoint: Callable[[str], str]) -> None:
    """A job whose activations include the pattern: its layers take TransformerLens's
    path (the pattern hook runs), and every number equals the eager path's."""
    model = load_model(matrix_checkpoint(name), "cpu", "float32")
    docs = tokenize(model, TEXTS, None)
    spec = JobSpec(model=name, activations=("pattern", "resid_post"), stats=("mean", "std"))
    results = {}
    for mode in ("eager", "fused"):
        with attention_mode(mode), module_calls(model) as seen:
            results[mode] = analyse_tokens(model, docs, spec)
        assert {"blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"} <= seen
    assert worst_difference(results["eager"], results["fused"]) <= 1e-5
    for a, b in zip(results["eager"], results["fused"], strict=True):
        assert max_relative(a.stats, b.stats) <= 1e-5
