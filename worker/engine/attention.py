"""Attention through a fused kernel wherever it gives today's numbers: the fused path.

TransformerLens's bridge rebuilds every attention layer eagerly, so that hook_attn_scores
and hook_pattern can see the [batch, head, query, key] scores and pattern. A job that
only wants the per-head summaries need not pay for them: `install` gives each layer it
can serve exactly (SERVED) a path through a fused kernel, taken on every forward pass
where nothing hooks the layer's hook_pattern or hook_attn_scores but the reducer of
`summaries_to`, which then receives the layer's summaries from the kernel's logsumexp
(worker/engine/fused_summaries.py). Whenever anything else hooks either (`--activations
pattern`, `score --activations`, run_with_cache, a user's hook), the layer runs
TransformerLens's own path and every hook fires as before. Every other hook point
(hook_in, hook_q/k/v, hook_rot_q/k, hook_cos/sin, hook_z, hook_out, the blocks' and
the residual stream's) fires on both paths.

Two ways in, both through the bridge's own pieces:
- JointQKVAttentionBridge (GPT-2 and its kin; with rotary, GPT-NeoX/Pythia, Falcon,
  Phi-3): its `_reconstruct_attention(q, k, v)` is replaced by one whose scores,
  softmax and pattern are a fused kernel call.
- PositionEmbeddingsAttentionBridge (the Llama family): the wrapped Hugging Face
  module's own forward runs, its attention dispatched through transformers' public
  AttentionInterface to `fused_attention` (registered as ATTENTION_NAME, with the
  eager mask in ALL_MASK_ATTENTION_FUNCTIONS), its projections the bridge's.

LENSBATCH_ATTENTION=eager (or `attention_mode("eager")`) turns the fused path off.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge
from transformer_lens.model_bridge.generalized_components.joint_qkv_attention import (
    JointQKVAttentionBridge,
)
from transformer_lens.model_bridge.generalized_components.joint_qkv_position_embeddings_attention import (  # noqa: E501
    JointQKVPositionEmbeddingsAttentionBridge,
)
from transformer_lens.model_bridge.generalized_components.position_embeddings_attention import (
    PositionEmbeddingsAttentionBridge,
)
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

from worker.engine.attention_mode import current_mode, current_sink
from worker.engine.attention_rules import not_served_reason
from worker.engine.fused_summaries import additive_mask, attend, causal_or, per_query_from_lse

ATTENTION_NAME = "lensbatch_fused"
# The layer whose Hugging Face forward is dispatching to fused_attention: (bridge, layer).
_CALL: ContextVar[tuple[AttentionBridge, int] | None] = ContextVar(
    "lensbatch_fused_call", default=None)


def _hook_count(bridge: AttentionBridge) -> tuple[int, int]:
    pattern, scores = bridge.hook_pattern, bridge.hook_attn_scores
    return (len(pattern._forward_hooks) + len(pattern._backward_hooks),
            len(scores._forward_hooks) + len(scores._backward_hooks))


def _cached_length(bridge: AttentionBridge, kwargs: dict[str, Any]) -> int:
    cache = kwargs.get("past_key_values") or kwargs.get("layer_past")
    if cache is None or not hasattr(cache, "get_seq_length"):
        return 0
    return int(cache.get_seq_length(bridge._layer_idx or 0))


def _fused_now(bridge: AttentionBridge, layer: int, kwargs: dict[str, Any]) -> bool:
    """Whether this call can take the fused path: asked for, no hook but the sink's on
    the pattern or scores, inference, no cached keys, no per-head result or input fork."""
    if current_mode() != "fused" or bridge.training or bridge.compatibility_mode:
        return False
    cfg = bridge.config
    if any(bool(getattr(cfg, flag, False))
           for flag in ("use_attn_result", "use_split_qkv_input", "use_attn_in")):
        return False
    sink = current_sink()
    sinks = 1 if sink is not None and layer in sink.layers else 0
    if _hook_count(bridge) != (sinks, 0):
        return False
    return _cached_length(bridge, kwargs) == 0


def fused_core(
    layer: int,
    q: torch.Tensor,  # [batch, head, query, d_head]
    k: torch.Tensor,  # [batch, head, key, d_head], key/value heads repeated
    v: torch.Tensor,  # [batch, head, key, d_head]
    mask: torch.Tensor | None,  # Hugging Face's 4D mask (additive or bool), or causal
    scale: float,
) -> torch.Tensor:  # [batch, head, query, d_head]
    """The attention output through a fused kernel, and the layer's summaries to the
    sink when it wants them."""
    if v.shape[-1] != q.shape[-1] or k.shape[-2] != q.shape[-2]:
        raise RuntimeError("fused attention needs one head size and as many keys as queries")
    additive = additive_mask(mask, k.shape[-2], q.dtype)
    if mask is not None and additive is not None:
        additive = causal_or(mask, additive)
    out = attend(q, k, v, additive, scale)
    sink = current_sink()
    if sink is not None and layer in sink.layers:
        per_query = per_query_from_lse(
            q.float(), k.float(), None if additive is None else additive.float(), scale,
            sink.current())
        sink.receive(layer, per_query)
    return out


def _repeat_kv(states: torch.Tensor, n_heads: int) -> torch.Tensor:
    groups = n_heads // states.shape[1]
    return states if groups == 1 else states.repeat_interleave(groups, dim=1)


def _joint_reconstruct(
    bridge: JointQKVAttentionBridge, layer: int, original: Callable[..., tuple[Any, ...]],
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs: Any,
) -> tuple[Any, ...]:
    """JointQKVAttentionBridge._reconstruct_attention (and its rotary subclass's) with
    the scores, softmax and pattern replaced by the fused kernel."""
    if not _fused_now(bridge, layer, kwargs):
        return original(q, k, v, **kwargs)
    cfg: Any = bridge.config
    n_heads = int(cfg.n_heads)
    n_kv = int(getattr(cfg, "n_key_value_heads", None) or n_heads)
    q, k, v, batch, n_pos, d_head = bridge._reshape_qkv_to_heads(q, k, v, n_heads, n_kv)
    scale = d_head ** -0.5
    if isinstance(bridge, JointQKVPositionEmbeddingsAttentionBridge):
        embeddings = kwargs.get("position_embeddings")
        if isinstance(embeddings, tuple):
            cos, sin = bridge._apply_position_embedding_hooks(embeddings)
            q, k = bridge._apply_rotary_pos_emb(q, k, cos, sin)
    elif getattr(cfg, "scale_attn_by_inverse_layer_idx", False) and bridge._layer_idx is not None:
        scale /= float(bridge._layer_idx + 1)
    k, v = bridge._update_kv_cache(k, v, **kwargs)
    out = fused_core(layer, q, _repeat_kv(k, n_heads), _repeat_kv(v, n_heads),
                     kwargs.get("attention_mask"), scale)
    out = bridge._reshape_attn_output(out, batch, n_pos, n_heads, d_head)
    return (bridge._apply_output_projection(out), None)


def _position_embeddings_forward(
    bridge: PositionEmbeddingsAttentionBridge, layer: int, original: Callable[..., Any],
    *args: Any, **kwargs: Any,
) -> Any:
    """PositionEmbeddingsAttentionBridge.forward, or, on the fused path, the wrapped
    Hugging Face module's forward dispatching to fused_attention."""
    # Hugging Face's attention modules order their parameters differently: every
    # argument but the hidden states must come by name.
    named = len(args) == (0 if "hidden_states" in kwargs else 1)
    if not named or not _fused_now(bridge, layer, kwargs):
        return original(*args, **kwargs)
    hf_attn: Any = bridge.original_component
    hidden_states = kwargs.pop("hidden_states") if "hidden_states" in kwargs else args[0]
    embeddings = kwargs.pop("position_embeddings", None)
    hidden_states = bridge.hook_in(hidden_states)
    if embeddings is not None:
        embeddings = bridge._apply_position_embedding_hooks(embeddings)
    config = hf_attn.config
    before = config._attn_implementation
    token = _CALL.set((bridge, layer))
    config._attn_implementation = ATTENTION_NAME
    try:
        with _normed_hooks(bridge):
            output = hf_attn(hidden_states=hidden_states, position_embeddings=embeddings,
                             **kwargs)
    finally:
        config._attn_implementation = before
        _CALL.reset(token)
    return bridge.hook_out(output[0]), None


def _heads_first(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Hugging Face's [batch, pos, head, d_head] as TransformerLens norms it (a norm over
    d_head alone, so the same numbers): [batch, head, pos, d_head]."""
    return (args[0].transpose(1, 2), *args[1:])


def _fire_normed(hook: torch.nn.Module, back: bool, module: torch.nn.Module, args: Any,
                 output: torch.Tensor) -> torch.Tensor:
    """A QK norm's output through the bridge's hook_q_normed / hook_k_normed, in the
    layout TransformerLens gives it: flat [batch, pos, head * d_head], or [batch, head,
    pos, d_head] (then handed back to Hugging Face as [batch, pos, head, d_head])."""
    if output.ndim == 3:
        return hook(output)
    if back:  # normed heads first (_heads_first)
        return hook(output).transpose(1, 2)
    return hook(output.transpose(1, 2)).transpose(1, 2)  # per-head norms: normed as given


@contextmanager
def _normed_hooks(bridge: PositionEmbeddingsAttentionBridge) -> Iterator[None]:
    """While the wrapped module runs, its QK norms (the bridge's own norm modules) see
    what they see in TransformerLens's forward and fire the hook points it fires."""
    heads_first = bridge._qk_norm_phase == "post_reshape" and not bridge._qk_norm_per_head
    handles = []
    for norm, hook in (("q_norm", getattr(bridge, "hook_q_normed", None)),
                       ("k_norm", getattr(bridge, "hook_k_normed", None))):
        module = bridge._modules.get(norm)
        if hook is None or module is None:
            continue
        if heads_first:
            handles.append(module.register_forward_pre_hook(_heads_first))
        handles.append(module.register_forward_hook(partial(_fire_normed, hook, heads_first)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def fused_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # [batch, head, query, d_head], after RoPE
    key: torch.Tensor,  # [batch, kv_head, key, d_head]
    value: torch.Tensor,  # [batch, kv_head, key, d_head]
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:  # [batch, query, head, d_head], no weights
    """The AttentionInterface function of ATTENTION_NAME (only ever set during a fused
    layer's forward): the bridge's rotary hooks, then fused_core."""
    call = _CALL.get()
    if call is None:
        raise RuntimeError(f"{ATTENTION_NAME} attention runs only inside a lensbatch bridge")
    if kwargs.get("softcap") is not None or kwargs.get("s_aux") is not None:
        raise RuntimeError("fused attention has no softcapping or sinks")
    bridge, layer = call
    if hasattr(bridge, "hook_rot_q"):
        query, key = bridge.hook_rot_q(query), bridge.hook_rot_k(key)
    n_heads = query.shape[1]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out = fused_core(layer, query, _repeat_kv(key, n_heads), _repeat_kv(value, n_heads),
                     attention_mask, scale)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION_NAME, fused_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, eager_mask)


def _attention_modules(model: TransformerBridge) -> Iterator[tuple[int, AttentionBridge]]:
    for layer, block in enumerate(model.blocks):
        attn = block._modules.get("attn")
        if isinstance(attn, AttentionBridge):
            yield layer, attn


_INSTALLED: weakref.WeakSet[TransformerBridge] = weakref.WeakSet()


def served(model: TransformerBridge) -> dict[int, str | None]:
    """Attention layer -> None where the fused path serves it, else why not
    (attention_rules); every layer is TransformerLens's own until `install`."""
    return {layer: (not_served_reason(attn) if model in _INSTALLED else "not installed")
            for layer, attn in _attention_modules(model)}


def install(model: TransformerBridge) -> dict[int, str | None]:
    """Give every attention layer the fused path that can serve it exactly (once per
    model); returns `served(model)`. A bad LENSBATCH_ATTENTION fails here, at load."""
    current_mode()
    if model in _INSTALLED:
        return served(model)
    _INSTALLED.add(model)
    for layer, attn in _attention_modules(model):
        if not_served_reason(attn) is not None:
            continue
        if isinstance(attn, JointQKVAttentionBridge):
            attn._reconstruct_attention = partial(  # type: ignore[method-assign]
                _joint_reconstruct, attn, layer, attn._reconstruct_attention)
        elif isinstance(attn, PositionEmbeddingsAttentionBridge):
            # Past the bridge's setattr, which would hand `forward` to the wrapped module.
            object.__setattr__(attn, "forward", partial(
                _position_embeddings_forward, attn, layer, attn.forward))
    return served(model)
