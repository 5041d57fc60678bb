"""The architecture matrix: tiny, seeded random checkpoints of every decoder-only causal
LM that TransformerLens's bridge loads and a tiny config can build offline.

Each is built with `transformers` from a config (vocabulary 50,257, two layers, width 32,
four heads of 8, two key/value heads where the architecture has them, four experts
choosing two where it has experts, a 16-token sliding window where it has one), saved
with `save_pretrained` next to GPT-2's tokenizer: a few MB each, no network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEED = 1234
# Asked of every config; a config gets only the keys it has (hasattr on its defaults).
BASE: dict[str, Any] = {
    "vocab_size": 50257, "hidden_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
    "intermediate_size": 64, "max_position_embeddings": 128,
    "bos_token_id": 50256, "eos_token_id": 50256, "pad_token_id": 50256,
    "num_local_experts": 4, "num_experts": 4, "num_experts_per_tok": 2,
    "moe_intermediate_size": 32, "sliding_window": 16,
}


@dataclass(frozen=True)
class Arch:
    name: str  # the matrix's label
    model_type: str  # transformers' model_type (AutoConfig.for_model)
    config: dict[str, Any] = field(default_factory=dict)  # on top of BASE
    drop: tuple[str, ...] = ()  # BASE keys this config must not get

    def config_kwargs(self) -> dict[str, Any]:
        from transformers import AutoConfig

        defaults = AutoConfig.for_model(self.model_type)
        kwargs = {k: v for k, v in BASE.items() if k not in self.drop and _has(defaults, k)}
        return {**kwargs, **self.config}


def _has(config: Any, key: str) -> bool:
    try:
        return hasattr(config, key)
    except RuntimeError:  # a per-layer attribute (Gemma 4's head_dim) read globally
        return True


# Multi-head latent attention (DeepSeek V2/V3 and their descendants), at width 32.
MLA = {"num_key_value_heads": 4, "kv_lora_rank": 16, "q_lora_rank": 16, "qk_rope_head_dim": 8,
       "qk_nope_head_dim": 8, "qk_head_dim": 16, "v_head_dim": 8, "n_routed_experts": 4,
       "first_k_dense_replace": 1, "n_group": 1, "topk_group": 1}
# The seven first: GPT-2, GPT-NeoX, Llama, Gemma, Qwen2, Mixtral (experts), Mamba
# (no attention); then every other architecture, learned positions first.
MATRIX: tuple[Arch, ...] = (
    Arch("gpt2", "gpt2"),
    Arch("gpt-neox", "gpt_neox"),
    Arch("llama", "llama"),
    Arch("gemma", "gemma"),
    Arch("qwen2", "qwen2", {"use_sliding_window": True, "max_window_layers": 1}),
    Arch("mixtral", "mixtral"),
    Arch("mamba", "mamba"),
    Arch("gpt-neo", "gpt_neo", {"attention_types": [[["global", "local"], 1]],
                                "window_size": 16}),
    Arch("gpt-bigcode", "gpt_bigcode"),
    Arch("opt", "opt"),
    Arch("xglm", "xglm", drop=("pad_token_id",)),  # its positions skip pad_token_id
    Arch("bloom", "bloom"),
    Arch("mpt", "mpt"),
    Arch("gpt-j", "gptj", {"rotary_dim": 4}),
    Arch("falcon", "falcon", drop=("head_dim",)),
    Arch("phi", "phi"),
    Arch("phi3", "phi3"),
    Arch("stablelm", "stablelm"),
    Arch("starcoder2", "starcoder2"),
    Arch("mistral", "mistral"),
    Arch("ministral3", "ministral3"),
    Arch("llama4", "llama4_text"),
    Arch("gemma2", "gemma2"),
    Arch("gemma3", "gemma3_text"),
    Arch("gemma4", "gemma4_text", {"vocab_size_per_layer_input": 50257,
                                   "hidden_size_per_layer_input": 8, "global_head_dim": 8},
         drop=("num_experts",)),
    Arch("vaultgemma", "vaultgemma"),
    Arch("qwen2-moe", "qwen2_moe"),
    Arch("qwen3", "qwen3"),
    Arch("qwen3-moe", "qwen3_moe"),
    Arch("qwen3-next", "qwen3_next", {"layer_types": ["linear_attention", "full_attention"]}),
    Arch("qwen3.5", "qwen3_5_text", {"layer_types": ["linear_attention", "full_attention"]}),
    Arch("qwen3.5-moe", "qwen3_5_moe_text",
         {"layer_types": ["linear_attention", "full_attention"]}),
    Arch("olmo", "olmo"),
    Arch("olmo2", "olmo2"),
    Arch("olmo3", "olmo3"),
    Arch("olmoe", "olmoe"),
    Arch("flex-olmo", "flex_olmo"),
    Arch("olmo-hybrid", "olmo_hybrid"),
    Arch("cohere", "cohere"),
    Arch("cohere2", "cohere2"),
    Arch("granite", "granite"),
    Arch("granite-moe", "granitemoe"),
    Arch("glm", "glm"),
    Arch("glm4", "glm4"),
    Arch("glm4-moe", "glm4_moe"),
    Arch("glm4-moe-lite", "glm4_moe_lite", MLA),
    Arch("glm-moe-dsa", "glm_moe_dsa", MLA),
    Arch("deepseek-v2", "deepseek_v2", {**MLA, "q_lora_rank": None}),
    Arch("deepseek-v3", "deepseek_v3", MLA),
    Arch("youtu", "youtu", MLA),
    Arch("ernie4.5", "ernie4_5"),
    Arch("ernie4.5-moe", "ernie4_5_moe"),
    Arch("exaone4", "exaone4"),
    Arch("hunyuan-dense", "hunyuan_v1_dense"),
    Arch("jais2", "jais2"),
    Arch("jetmoe", "jetmoe"),
    Arch("laguna", "laguna"),
    Arch("lfm2", "lfm2"),
    Arch("lfm2-moe", "lfm2_moe", {"layer_types": ["conv", "full_attention"],
                                  "num_dense_layers": 1}),
    Arch("minimax-m2", "minimax_m2"),
    Arch("nanochat", "nanochat"),
    Arch("nemotron", "nemotron"),
    Arch("seed-oss", "seed_oss"),
    Arch("smollm3", "smollm3"),
    Arch("apertus", "apertus"),
    Arch("arcee", "arcee"),
    Arch("bitnet", "bitnet"),
    Arch("afmoe", "afmoe"),
    Arch("gpt-oss", "gpt_oss"),
    Arch("modernbert-decoder", "modernbert-decoder"),
    Arch("mamba2", "mamba2", {"num_heads": 8, "head_dim": 8, "n_groups": 1, "state_size": 16}),
    Arch("falcon-mamba", "falcon_mamba"),
    Arch("rwkv", "rwkv"),
    Arch("jamba", "jamba", {"attn_layer_period": 2, "attn_layer_offset": 1,
                            "expert_layer_period": 2, "expert_layer_offset": 1,
                            "use_mamba_kernels": False}),
    Arch("bamba", "bamba", {"mamba_n_heads": 4, "mamba_d_head": 16, "mamba_n_groups": 1,
                            "mamba_d_state": 16, "attn_layer_indices": [1]}),
    Arch("falcon-h1", "falcon_h1"),
)

BY_NAME = {arch.name: arch for arch in MATRIX}


def build_checkpoint(arch: Arch, directory: Path) -> Path:
    """Save `arch`'s tiny model with seeded random weights and GPT-2's tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from worker.engine.tokenizer import gpt2_tokenizer

    config = AutoConfig.for_model(arch.model_type, **arch.config_kwargs())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = AutoModelForCausalLM.from_config(config).eval()
    model.save_pretrained(directory)
    gpt2_tokenizer().save_pretrained(directory)
    return directory
