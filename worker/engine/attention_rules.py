"""Which attention layers the fused path (worker/engine/attention.py) serves, and why not.

It serves exactly the bridge classes in SERVED, and of those only layers whose attention
is softmax(scale * q.k + mask) @ v with a mask Hugging Face builds: anything between
the scores and the softmax (softcapping, sinks), and anything TransformerLens's own
forward does that the wrapped module's does not (gates, query or key scaling),
keeps TransformerLens's path. tests/unit/test_fused_attention.py holds each served
architecture of the matrix to the eager path's numbers.
"""

from __future__ import annotations

from typing import Any

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

SERVED = (JointQKVAttentionBridge, JointQKVPositionEmbeddingsAttentionBridge,
          PositionEmbeddingsAttentionBridge)

# Why a bridge class the matrix meets keeps TransformerLens's path.
NOT_FUSED: dict[str, str] = {
    "AttentionBridge": "the bridge delegates attention to the wrapped module, which "
                       "returns the pattern (GPT-J, GPT-Neo, OPT, XGLM, Llama 4, Gemma 4, "
                       "toy-induction, ...)",
    "BloomAttentionBridge": "ALiBi: a per-head linear bias is added to the scores",
    "MPTALiBiAttentionBridge": "ALiBi: a per-head linear bias is added to the scores",
    "MLAAttentionBridge": "multi-head latent attention: queries/keys and values differ "
                          "in head size",
    "GlmMoeDsaAttentionBridge": "sparse (indexer-selected) attention",
}
SOFTCAP = "logit softcapping: tanh between the scores and the softmax (Gemma 2)"
SINKS = "attention sinks: a learned logit joins each softmax (GPT-OSS)"
QK_NORM_AFTER_ROPE = "QK norm after RoPE (HunYuan): TransformerLens's own order"
GATED = "gated attention output (a sigmoid gate from the queries or the input)"
QUERY_SCALE = "queries scaled by position after RoPE (Ministral 3)"
KEY_SCALE = "keys scaled by a learned multiplier: TransformerLens fires its own hook_k (Falcon-H1)"
SUBCLASS = "a bridge subclass with a forward of its own"


def _hf_reason(attn: AttentionBridge) -> str | None:
    hf: Any = attn.original_component
    if getattr(hf, "attn_logit_softcapping", None) is not None:
        return SOFTCAP
    if getattr(hf, "sinks", None) is not None:
        return SINKS
    rope = getattr(getattr(hf, "config", None), "rope_parameters", None)
    if isinstance(rope, dict) and rope.get("llama_4_scaling_beta") is not None:
        return QUERY_SCALE
    if getattr(hf, "key_multiplier", None) is not None:
        return KEY_SCALE
    return None


def not_served_reason(attn: AttentionBridge) -> str | None:
    """None when the fused path serves this layer exactly, else why not."""
    kind = type(attn)
    if kind not in SERVED:
        return NOT_FUSED.get(kind.__name__, SUBCLASS)
    reason = _hf_reason(attn)
    if reason is not None or kind is not PositionEmbeddingsAttentionBridge:
        return reason
    if getattr(attn.config, "qk_norm_after_rope", False):
        return QK_NORM_AFTER_ROPE
    if getattr(attn.config, "gated_q_proj", False) or "gate" in attn.submodules:
        return GATED
    return None
