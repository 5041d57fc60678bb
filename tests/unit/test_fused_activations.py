"""The spelled-out tanh GELUs are swapped for one kernel call, with the same values."""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers.activations import FastGELUActivation, NewGELUActivation

from worker.engine.fused_activations import SPELLED_OUT, TanhGELU, fuse_activations
from worker.engine.models import load_model


def _reference(x: torch.Tensor) -> torch.Tensor:  # float64 tanh GELU
    x = x.double()
    return 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x ** 3)))


def test_the_kernel_is_as_close_to_the_float64_value_as_the_spelled_out_forms() -> None:
    torch.manual_seed(0)
    x = torch.cat([torch.randn(200_000) * 4, torch.linspace(-12, 12, 10_001)])
    exact = _reference(x)
    ours = (TanhGELU()(x).double() - exact).abs()
    for spelled in (NewGELUActivation(), FastGELUActivation()):
        theirs = (spelled(x).double() - exact).abs()
        assert float(ours.max()) <= max(float(theirs.max()), 1e-6)
    assert float(ours.max()) < 1e-6


def test_fuse_swaps_nested_modules_and_counts_them() -> None:
    inner = torch.nn.Sequential(FastGELUActivation(), torch.nn.ReLU())
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), NewGELUActivation(), inner)
    x = torch.randn(3, 4)
    before = net(x)
    assert fuse_activations(net) == 2
    assert not any(isinstance(m, SPELLED_OUT) for m in net.modules())
    assert isinstance(net[1], TanhGELU) and isinstance(inner[0], TanhGELU)
    assert isinstance(inner[1], torch.nn.ReLU)
    torch.testing.assert_close(net(x), before, rtol=1e-6, atol=1e-6)
    assert fuse_activations(net) == 0


def test_a_loaded_gpt2_has_no_spelled_out_gelu_and_its_mlp_hooks_fire() -> None:
    model = load_model("gpt2-small-random", "cpu", "float32")
    assert not any(isinstance(m, SPELLED_OUT) for m in model.modules())
    seen: dict[str, torch.Tensor] = {}

    def keeper(name: str) -> Callable[[torch.Tensor, object], None]:
        def keep(value: torch.Tensor, hook: object) -> None:
            seen[name] = value
        return keep

    names = ["blocks.3.mlp.hook_pre", "blocks.3.mlp.hook_post"]
    tokens = torch.arange(1, 33)[None]
    with torch.inference_mode(), model.hooks(fwd_hooks=[(n, keeper(n)) for n in names]):
        model(tokens, return_type=None, logits_to_keep=1)
    assert set(seen) == set(names)
    pre, post = seen[names[0]], seen[names[1]]
    torch.testing.assert_close(post.double(), _reference(pre), rtol=1e-5, atol=1e-6)
