"""A loaded model's card, read off the bridge: its architecture, the hooks that fire and
the weights it has, each with the shape the bridge exposes.

`lensbatch inspect` prints the card and workers keep it in the models table. Nothing
here is assumed from the model's name: hooks are those that fire in one forward pass,
attention layers are those whose `hook_pattern` fires, and a weight is listed only
when the bridge has it (a rotary model has no W_pos, a state-space model no W_Q).
"""

from __future__ import annotations

import weakref
from functools import partial
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from lensbatch.hooks import BLOCK_HOOKS, GLOBAL_HOOKS, ModelShape

# TransformerLens's positional_embedding_type -> what the card says.
POSITIONAL = {"standard": "learned", "rotary": "rotary", "alibi": "ALiBi", "none": "none"}
NORMS = {"LN": "LayerNorm", "LNPre": "LayerNorm (no weights)", "RMS": "RMSNorm",
         "RMSPre": "RMSNorm (no weights)"}
# Stacked per-block weights and the block submodule each lives in.
BLOCK_WEIGHTS = {"W_Q": "attn", "W_K": "attn", "W_V": "attn", "W_O": "attn",
                 "W_in": "mlp", "W_gate": "mlp", "W_out": "mlp"}
WEIGHT_ORDER = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_gate", "W_out", "W_U")
# What the bridge raises for a weight a model does not have (and HF configs for a
# per-layer attribute read globally).
MISSING = (AttributeError, NotImplementedError, RuntimeError, ValueError, TypeError)


def _mark(fired: set[str], name: str, activation: Any, hook: Any) -> None:
    fired.add(name)


# Per loaded model, weakly: a model the worker lets go is not kept alive by this cache.
_FIRED: weakref.WeakKeyDictionary[TransformerBridge, frozenset[str]] = (
    weakref.WeakKeyDictionary())


def fired_hooks(model: TransformerBridge) -> frozenset[str]:
    """The canonical hook names (lensbatch.hooks) that fire when the model runs: a hook
    the bridge registers but never calls (a rotary model's hook_pos_embed) is left out.
    One forward pass over two tokens, once per model and process."""
    if model not in _FIRED:
        _FIRED[model] = _run_hooks(model)
    return _FIRED[model]


def _run_hooks(model: TransformerBridge) -> frozenset[str]:
    n_layers = int(model.cfg.n_layers)
    names = [f"blocks.{layer}.{h}" for layer in range(n_layers) for h in BLOCK_HOOKS]
    names = [n for n in names + list(GLOBAL_HOOKS) if n in model.hook_dict]
    fired: set[str] = set()
    tokens = torch.zeros((1, 2), dtype=torch.long, device=model.cfg.device or "cpu")
    with torch.inference_mode(), model.hooks(fwd_hooks=[(n, partial(_mark, fired, n))
                                                        for n in names]):
        model(tokens, return_type=None)
    return frozenset(fired)


def loaded_shape(model: TransformerBridge) -> ModelShape:
    """The hooks this model really has, as a ModelShape (lensbatch/hooks.py)."""
    return ModelShape.from_names(int(model.cfg.n_layers), fired_hooks(model))


def attention_layers(model: TransformerBridge) -> tuple[int, ...]:
    """The layers whose attention pattern the bridge exposes (every layer of a
    transformer, none of a state-space model, some of a hybrid)."""
    fired = fired_hooks(model)
    return tuple(layer for layer in range(int(model.cfg.n_layers))
                 if f"blocks.{layer}.attn.hook_pattern" in fired)


def _config_value(config: Any, name: str) -> Any:
    try:
        return getattr(config, name, None)
    except MISSING:  # a per-layer attribute (Gemma 4) has no global value
        return None


def _sliding_layers(hf_config: Any, layers: tuple[int, ...]) -> tuple[int | None, list[int]]:
    """(window, layers that use it) from the Hugging Face config, or (None, []): its
    sliding_window and layer_types, or GPT-Neo's window_size and "local" layers."""
    local = _config_value(hf_config, "attention_layers")  # GPT-Neo: "global" or "local"
    window = _config_value(hf_config, "window_size" if local else "sliding_window")
    if not isinstance(window, int) or window <= 0:
        return None, []
    types = local or _config_value(hf_config, "layer_types")
    if isinstance(types, list | tuple):
        sliding = [layer for layer in layers
                   if "sliding" in str(types[layer]) or str(types[layer]) == "local"]
    elif _config_value(hf_config, "use_sliding_window") is False:
        sliding = []
    else:
        sliding = list(layers)
    return (window if sliding else None), sliding


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def positional_scheme(model: TransformerBridge) -> str:
    """learned, rotary, ALiBi or none; absolute positions that are no weight (XGLM's
    sinusoids) are "fixed absolute"."""
    kind = str(model.cfg.positional_embedding_type)
    if kind == "standard" and getattr(model, "pos_embed", None) is None:
        return "fixed absolute"
    return POSITIONAL.get(kind, kind)


def attention_kind(model: TransformerBridge, layers: tuple[int, ...]) -> str:
    if not layers:
        return "none"
    hf_config = getattr(getattr(model, "original_model", None), "config", None)
    n_kv, n_heads = _int(getattr(model.cfg, "n_key_value_heads", None)), int(model.cfg.n_heads)
    if _config_value(hf_config, "kv_lora_rank"):
        return "multi-head latent"
    if n_kv is None or n_kv == n_heads:
        return "multi-head"
    return "multi-query" if n_kv == 1 else "grouped-query"


def architecture_facts(model: TransformerBridge) -> dict[str, Any]:
    """Positional scheme, attention kind, MLP, mixture of experts and norm."""
    cfg = model.cfg
    hf_config = getattr(getattr(model, "original_model", None), "config", None)
    layers = attention_layers(model)
    kind = attention_kind(model, layers)
    window, sliding = _sliding_layers(hf_config, layers)
    experts = _int(getattr(cfg, "num_experts", None))
    return {
        "class": str(cfg.architecture or type(model.original_model).__name__),
        "positional": positional_scheme(model),
        "attention": kind,
        "attention_layers": list(layers),
        "n_key_value_heads": (_int(getattr(cfg, "n_key_value_heads", None))
                              if kind in ("grouped-query", "multi-query") else None),
        "sliding_window": window,
        "sliding_window_layers": sliding,
        "parallel_attn_mlp": bool(getattr(cfg, "parallel_attn_mlp", False)),
        "gated_mlp": bool(getattr(cfg, "gated_mlp", False)),
        "experts": experts,
        "experts_per_token": _int(getattr(cfg, "experts_per_token", None)) if experts else None,
        "norm": NORMS.get(str(cfg.normalization_type), "none"),
        "default_prepend_bos": bool(getattr(cfg, "default_prepend_bos", True)),
    }


def _per_block_shape(model: TransformerBridge, name: str, shape: tuple[int, ...]) -> list[int]:
    """A block weight's shape as the bridge stacks it: 2-D [d_model, d_model] attention
    weights are split into heads (TransformerBridge._reshape_qkv and _reshape_o)."""
    d_model, n_heads = int(model.cfg.d_model), int(model.cfg.n_heads)
    if BLOCK_WEIGHTS[name] != "attn" or shape != (d_model, d_model):
        return list(shape)
    d_head = d_model // n_heads
    return [n_heads, d_head, d_model] if name == "W_O" else [n_heads, d_model, d_head]


def _stacked_shape(model: TransformerBridge, name: str) -> list[int] | None:
    """[blocks with the weight, *its per-block shape], one block at a time: stacking the
    weights (the bridge's W_in) would copy every layer's, a second copy of the model."""
    submodule = BLOCK_WEIGHTS[name]
    shapes = []
    for _, block in model.blocks_with(submodule):
        try:
            weight = getattr(getattr(block, submodule), name)
        except MISSING:
            continue
        if weight is None:
            return None
        shapes.append(_per_block_shape(model, name, tuple(weight.shape)))
    if not shapes or any(shape != shapes[0] for shape in shapes):
        return None
    return [len(shapes), *shapes[0]]


def weight_shapes(model: TransformerBridge) -> dict[str, list[int]]:
    """The weights this model has, by TransformerBridge attribute, with their shapes."""
    shapes: dict[str, list[int]] = {}
    for name in WEIGHT_ORDER:
        if name == "W_gate" and not getattr(model.cfg, "gated_mlp", False):
            continue
        if name in BLOCK_WEIGHTS:
            shape = _stacked_shape(model, name)
        else:
            try:
                shape = list(getattr(model, name).shape)
            except MISSING:
                shape = None
        if shape is not None:
            shapes[name] = shape
    return shapes


def model_card(model: TransformerBridge) -> dict[str, Any]:
    """Sizes, architecture and weight shapes: the seed notebook's first section, told
    truthfully for any architecture."""
    cfg = model.cfg
    sizes = {key: _int(getattr(cfg, key, None)) for key in (
        "n_layers", "n_heads", "n_ctx", "d_model", "d_head", "d_mlp", "d_vocab")}
    facts = architecture_facts(model)
    if facts["attention"] == "none":  # the config's head count means nothing here
        sizes.update(n_heads=None, d_head=None)
    return {
        "config": {
            **sizes,
            "act_fn": getattr(cfg, "act_fn", None),
            "normalization_type": getattr(cfg, "normalization_type", None),
            "positional_embedding_type": getattr(cfg, "positional_embedding_type", None),
            "architecture": facts,
        },
        "weight_shapes": weight_shapes(model),
    }
