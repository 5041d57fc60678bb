"""The tanh approximation of GELU through torch's own kernel, wherever a model spells it out.

GPT-2, GPT-J, Phi and their kin compute their MLP activation as Python arithmetic on
tensors, 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) (transformers' NewGELU and
FastGELU): seven passes over [batch, pos, d_mlp] where torch's
F.gelu(approximate="tanh") is one. It is the same function (both within 5e-7 of the
float64 value on GPT-2's activations, as tests/unit/test_fused_activations.py checks), so
the module is swapped inside the Hugging Face model: no hook point sits between it and
the MLP's hook_pre / hook_post, and every hook fires as before. On a CPU it takes the
MLP activation from about 7% of GPT-2 small's forward pass to under 2%.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.activations import FastGELUActivation, NewGELUActivation

SPELLED_OUT = (NewGELUActivation, FastGELUActivation)


class TanhGELU(torch.nn.Module):
    """GELU's tanh approximation as one kernel call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # any shape
        return F.gelu(x, approximate="tanh")


def fuse_activations(model: torch.nn.Module) -> int:
    """Swap every spelled-out tanh GELU inside `model` for TanhGELU; how many were."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in SPELLED_OUT:
                setattr(parent, name, TanhGELU())
                swapped += 1
    return swapped
