"""LayerNorm through torch's one kernel whenever nothing hooks its intermediate values.

TransformerLens's bridge computes every LayerNorm in Python (centre, square, mean, sqrt,
divide, scale, shift: NormalizationBridge._python_norm_forward) so that hook_scale and
hook_normalized can see and edit the scale and the normalized stream. When neither has
a hook, F.layer_norm computes the same function (the same eps, float32 arithmetic for
a lower-precision input, as the Python path) in one pass; hook_in and hook_out, around
it, fire either way. Whenever anything hooks hook_scale or hook_normalized (a job's
`--activations`, run_with_cache, a user's hook), that call takes the Python path and
the hooks fire as before. GPT-2 small on a CPU: its 25 LayerNorms took 2.5% of a
forward pass in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from transformer_lens.model_bridge.generalized_components.normalization import (
    NormalizationBridge,
)


def _hooked(bridge: NormalizationBridge) -> bool:
    return any(len(point._forward_hooks) + len(point._backward_hooks)
               for point in (bridge.hook_scale, bridge.hook_normalized))


def _servable(bridge: NormalizationBridge) -> bool:
    """A plain affine LayerNorm over the last dimension, which F.layer_norm computes."""
    norm = bridge.original_component
    return (type(bridge) is NormalizationBridge and isinstance(norm, torch.nn.LayerNorm)
            and norm.elementwise_affine and norm.weight is not None
            and len(norm.normalized_shape) == 1
            and not bridge.uses_rms_norm and not bridge.uses_weight_offset)


def _norm_forward(bridge: NormalizationBridge, python: Callable[[torch.Tensor], torch.Tensor],
                  hidden_states: torch.Tensor) -> torch.Tensor:  # [..., d_model]
    """NormalizationBridge._python_norm_forward, or F.layer_norm when nothing hooks the
    scale or the normalized stream."""
    if _hooked(bridge):
        return python(hidden_states)
    norm = bridge.original_component
    assert isinstance(norm, torch.nn.LayerNorm)
    eps = float(getattr(bridge.config, "eps", 1e-05))  # the Python path's eps
    dtype = hidden_states.dtype
    work = hidden_states if dtype in (torch.float32, torch.float64) else hidden_states.float()
    bias = None if norm.bias is None else norm.bias.to(work.dtype)
    out = F.layer_norm(work, norm.normalized_shape, norm.weight.to(work.dtype), bias, eps)
    return out.to(dtype)


def fuse_norms(model: torch.nn.Module) -> int:
    """Give every plain LayerNorm bridge of `model` the one-kernel path (once); how many
    were given it now."""
    served = 0
    for module in model.modules():
        if (isinstance(module, NormalizationBridge) and _servable(module)
                and "_python_norm_forward" not in vars(module)):
            # Past the bridge's setattr, which would hand the name to the wrapped module.
            object.__setattr__(module, "_python_norm_forward", partial(
                _norm_forward, module, module._python_norm_forward))
            served += 1
    return served
