"""LayerNorm's one-kernel path: the Python path's numbers, and its hooks whenever hooked."""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformer_lens.model_bridge.generalized_components.normalization import (
    NormalizationBridge,
)

from worker.engine.fused_norms import fuse_norms
from worker.engine.models import load_model

Hook = Callable[[torch.Tensor, object], None]


def _norms(model: torch.nn.Module) -> list[NormalizationBridge]:
    return list({id(m): m for m in model.modules() if isinstance(m, NormalizationBridge)}.values())


def test_every_layernorm_of_gpt2_is_served_and_installing_again_adds_nothing() -> None:
    model = load_model("gpt2-small-random", "cpu", "float32")
    assert len(_norms(model)) == 25  # ln1 and ln2 of 12 blocks, ln_final
    assert all("_python_norm_forward" in vars(m) for m in _norms(model))
    assert fuse_norms(model) == 0  # already served: nothing wrapped twice


def test_the_kernel_gives_the_python_paths_logits_and_hooks_still_fire() -> None:
    model = load_model("gpt2-small-random", "cpu", "float32")
    tokens = torch.randint(0, 50257, (2, 64), generator=torch.Generator().manual_seed(0))
    seen: dict[str, torch.Tensor] = {}

    def keeper(name: str) -> Hook:
        def keep(value: torch.Tensor, hook: object) -> None:
            seen[name] = value
        return keep

    with torch.inference_mode():
        fused = model(tokens, return_type="logits")
        # A hook on every hook_scale sends every LayerNorm through the Python path.
        scales = [name for name in model.hook_dict if name.endswith(".hook_scale")]
        hooks = [(name, keeper(name)) for name in scales]
        with model.hooks(fwd_hooks=hooks):
            python = model(tokens, return_type="logits")
    assert len(seen) == 25
    torch.testing.assert_close(fused, python, rtol=1e-5, atol=1e-5)
    # The hooked scale is the Python path's: sqrt(var + eps) of the block's input.
    with torch.inference_mode(), model.hooks(fwd_hooks=[
            ("blocks.2.ln1.hook_scale", keeper("scale")),
            ("blocks.2.ln1.hook_in", keeper("input"))]):
        model(tokens, return_type=None, logits_to_keep=1)
    x = seen["input"]
    want = (x.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
    torch.testing.assert_close(seen["scale"], want, rtol=1e-5, atol=1e-6)


def test_a_bridge_that_is_not_a_plain_layernorm_keeps_its_own_path() -> None:
    class RMSLike(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(8))

    model = load_model("gpt2-small-random", "cpu", "float32")
    bridge = NormalizationBridge("probe", model.cfg)
    bridge.set_original_component(RMSLike())
    holder = torch.nn.ModuleDict({"norm": bridge})
    assert fuse_norms(holder) == 0
    assert "_python_norm_forward" not in vars(bridge)
