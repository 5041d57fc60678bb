"""The model registry: what lensbatch knows about a model before loading it.

A model comes from one of three sources, each described once here with its tokenizer
rule; the scheduler checks names with it at submit time without importing torch, and
worker/engine/models.py loads them by the same rules.

- builtin: made on the worker with no network (BUILTINS); GPT-2's tokenizer, offline.
- local: a Hugging Face checkpoint directory (config.json). Its own tokenizer when it
  has tokenizer files (TOKENIZER_FILES), else GPT-2's, as saved GPT-2 models use.
- hub: a name TransformerLens knows (`gpt2-small`, `pythia-70m`, ...); the hub's own
  tokenizer. Downloading needs a reachable hub or a warm Hugging Face cache.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from lensbatch.errors import ModelUnavailable
from lensbatch.hooks import BLOCK_HOOKS, GLOBAL_HOOKS, ModelShape
from lensbatch.own_code import check_own_code


class Source(StrEnum):
    BUILTIN = "builtin"
    LOCAL = "local"
    HUB = "hub"


@dataclass(frozen=True)
class Builtin:
    name: str
    shape: ModelShape  # known without building the model
    n_ctx: int  # context length, tokens
    description: str
    weights: str  # what its weights are, shown beside its numbers
    n_heads: int = 12  # attention heads per layer


RANDOM_LOSS = 10.8  # ln 50257: the loss of a uniform guess over GPT-2's vocabulary
BUILTINS = {b.name: b for b in (
    Builtin("gpt2-small-random", ModelShape(n_layers=12), 1024,
            "GPT-2 small's architecture with seeded random weights: real speed and "
            "memory, meaningless predictions",
            f"seeded random weights: an untrained model, loss ~ ln 50257 = {RANDOM_LOSS}"),
    Builtin("toy-induction", ModelShape(n_layers=2, has_mlp=False, has_norm=False), 1024,
            "two attention-only layers set by hand: a previous-token head (0.1) and an "
            "induction head (1.2)",
            "weights set by hand: a previous-token and an induction head, no language "
            f"model; loss ~ ln 50257 = {RANDOM_LOSS} except on repeated text", n_heads=4),
    Builtin("toy-induction-ablated", ModelShape(n_layers=2, has_mlp=False, has_norm=False),
            1024, "toy-induction with its induction head (1.2) switched off (zero weights): it "
            "predicts nothing, repeated text included; for comparisons",
            "weights set by hand, its induction head switched off: it predicts nothing, "
            f"loss ~ ln 50257 = {RANDOM_LOSS}", n_heads=4),
)}
# config.json keys that give a local checkpoint's context length.
CONTEXT_KEYS = ("n_positions", "max_position_embeddings", "n_ctx")
# config.json keys that give a local checkpoint's attention heads per layer.
HEAD_KEYS = ("n_head", "num_attention_heads")

# A local checkpoint with any of these has a tokenizer of its own.
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "tokenizer_config.json")


def is_local_checkpoint(name: str) -> bool:
    return (Path(name) / "config.json").is_file()


def has_own_tokenizer(name: str) -> bool:
    """Whether a model brings its tokenizer; False means GPT-2's (builtins, bare
    checkpoint directories)."""
    if name in BUILTINS:
        return False
    path = Path(name)
    return not path.is_dir() or any((path / f).is_file() for f in TOKENIZER_FILES)


@functools.lru_cache(maxsize=1)
def _hub_names() -> dict[str, str]:
    """Every name TransformerLens accepts, lowercased -> its official hub name.

    Read from transformer_lens's own files (supported_models.py's OFFICIAL_MODEL_NAMES
    and its alias table), as data: importing transformer_lens imports torch, seconds
    the scheduler should not spend to check a name.
    """
    spec = importlib.util.find_spec("transformer_lens")
    if spec is None or not spec.submodule_search_locations:
        return {}
    root = Path(list(spec.submodule_search_locations)[0])
    tree = ast.parse((root / "supported_models.py").read_text(encoding="utf-8"))
    official: list[str] = []
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "OFFICIAL_MODEL_NAMES":
            value = node.value if isinstance(node, ast.AnnAssign | ast.Assign) else None
            official = [e.value for e in getattr(value, "elts", [])
                        if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    aliases_path = root / "tools" / "model_registry" / "data" / "model_aliases.json"
    aliases: dict[str, list[str]] = json.loads(aliases_path.read_text())["aliases"]
    names: dict[str, str] = {}
    for name in official:
        names.update({alias.lower(): name for alias in aliases.get(name, [])})
        names[name.lower()] = name
    return names


def hub_name(name: str) -> str | None:
    """The official hub name for a TransformerLens name or alias, or None."""
    return _hub_names().get(name.lower())


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: the hub is not asked, only the Hugging Face cache."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def check_loadable(name: str) -> None:
    """Raise ModelUnavailable at once for a hub model that offline loading would miss.

    With HF_HUB_OFFLINE set, a hub model loads only from the Hugging Face cache; a model
    that is not there fails here, in a second, before torch is imported. Online, whether
    the hub answers is only known by asking it (the worker does).
    """
    if model_source(name) != Source.HUB or not hub_offline():
        return
    from huggingface_hub import try_to_load_from_cache

    repo = hub_name(name) or name
    if not isinstance(try_to_load_from_cache(repo, "config.json"), str):
        raise ModelUnavailable(
            f"cannot load model {name!r} ({repo}): HF_HUB_OFFLINE is set and it is not in "
            "the Hugging Face cache (warm the cache on a machine with network, or use a "
            "local checkpoint directory)")


def model_source(name: str) -> Source:
    """Where a model comes from, or ModelUnavailable for a name that is none of them.

    Whether a hub model's weights can be downloaded is only known on the worker.
    """
    if name in BUILTINS:
        return Source.BUILTIN
    if is_local_checkpoint(name):
        check_own_code(name, checkpoint_config(name))
        return Source.LOCAL
    if Path(name).exists():
        raise ModelUnavailable(f"{name} is not a Hugging Face checkpoint directory "
                               "(no config.json)")
    if hub_name(name) is not None:
        return Source.HUB
    raise ModelUnavailable(
        f"unknown model {name!r}: not a built-in ({', '.join(BUILTINS)}), not a local "
        "checkpoint directory, and not a model TransformerLens knows"
    )


# The hooks the bridge gives each architecture, as the canonical names it lacks (block
# hooks by suffix, on every layer); tests/unit/test_model_matrix.py checks each entry
# against the loaded model. Hybrids (attention on some layers only) list only what no
# layer has: the worker expands shorthand to the layers that have the hook.
_NO_POSITIONS = ("hook_pos_embed",)  # rotary, ALiBi or no positions: no hook_pos_embed
_PARALLEL = (*_NO_POSITIONS, "hook_resid_mid", "ln2.hook_scale", "ln2.hook_normalized")
_POST_NORM = (*_NO_POSITIONS, "ln1.hook_scale", "ln1.hook_normalized", "ln2.hook_scale",
              "ln2.hook_normalized")
_NO_ATTENTION = ("hook_attn_out", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_z",
                 "attn.hook_attn_scores", "attn.hook_pattern")
_STATE_SPACE = (*_POST_NORM, *_NO_ATTENTION, "hook_mlp_out", "mlp.hook_pre", "mlp.hook_post")
ABSENT_HOOKS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("GPT2LMHeadModel", "GPTNeoForCausalLM", "GPTBigCodeForCausalLM",
                     "OPTForCausalLM"), ()),
    "GPTNeoXForCausalLM": (*_NO_POSITIONS, "hook_resid_mid"),
    **dict.fromkeys(("GPTJForCausalLM", "FalconForCausalLM", "PhiForCausalLM",
                     "CohereForCausalLM", "Cohere2ForCausalLM"), _PARALLEL),
    **dict.fromkeys(("Olmo2ForCausalLM", "Olmo3ForCausalLM", "FlexOlmoForCausalLM",
                     "Exaone4ForCausalLM"), _POST_NORM),
    "Gemma4ForCausalLM": (*_POST_NORM, "ln_final.hook_scale", "ln_final.hook_normalized"),
    **dict.fromkeys(("MambaForCausalLM", "Mamba2ForCausalLM", "FalconMambaForCausalLM"),
                    (*_STATE_SPACE, "hook_resid_mid")),
    "RwkvForCausalLM": (*_NO_POSITIONS, *_NO_ATTENTION, "hook_mlp_out", "mlp.hook_pre",
                        "mlp.hook_post"),
    "JetMoeForCausalLM": (*_NO_POSITIONS, "attn.hook_q", "attn.hook_k", "attn.hook_v",
                          "attn.hook_z"),
    **dict.fromkeys((
        "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "GemmaForCausalLM",
        "Gemma2ForCausalLM", "Gemma3ForCausalLM", "VaultGemmaForCausalLM", "Qwen2ForCausalLM",
        "Qwen2MoeForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM",
        "Qwen3NextForCausalLM", "Qwen3_5ForCausalLM", "Qwen3_5MoeForCausalLM",
        "XGLMForCausalLM", "BloomForCausalLM", "MptForCausalLM", "Phi3ForCausalLM",
        "StableLmForCausalLM", "Starcoder2ForCausalLM", "Ministral3ForCausalLM",
        "Llama4ForCausalLM", "OlmoForCausalLM", "OlmoeForCausalLM", "OlmoHybridForCausalLM",
        "GraniteForCausalLM", "GraniteMoeForCausalLM", "GlmForCausalLM", "Glm4ForCausalLM",
        "Glm4MoeForCausalLM", "Glm4MoeLiteForCausalLM", "GlmMoeDsaForCausalLM",
        "DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM", "YoutuForCausalLM",
        "Ernie4_5ForCausalLM", "Ernie4_5_MoeForCausalLM", "HunYuanDenseV1ForCausalLM",
        "Jais2ForCausalLM", "LagunaForCausalLM", "Lfm2ForCausalLM", "Lfm2MoeForCausalLM",
        "MiniMaxM2ForCausalLM", "NanoChatForCausalLM", "NemotronForCausalLM",
        "SeedOssForCausalLM", "SmolLM3ForCausalLM", "ApertusForCausalLM", "ArceeForCausalLM",
        "BitNetForCausalLM", "AfmoeForCausalLM", "GptOssForCausalLM",
        "ModernBertDecoderForCausalLM", "JambaForCausalLM", "BambaForCausalLM",
        "FalconH1ForCausalLM"), _NO_POSITIONS),
}
LAYER_KEYS = ("n_layer", "num_hidden_layers", "n_layers", "num_layers")


def checkpoint_config(name: str) -> dict[str, object]:
    """A local checkpoint's config.json, or {} when it cannot be read."""
    try:
        config = json.loads((Path(name) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def shape_from_config(config: dict[str, object]) -> ModelShape:
    """The hooks a checkpoint's model will have, from its config.json: its layer count,
    and what its architecture lacks (ABSENT_HOOKS) when lensbatch knows it."""
    layers = next((v for k in LAYER_KEYS if isinstance(v := config.get(k), int)), None)
    architectures = config.get("architectures")
    arch = architectures[0] if isinstance(architectures, list) and architectures else None
    if layers is None or arch not in ABSENT_HOOKS:
        # MLP and LayerNorm hooks are assumed; the worker checks the real model.
        return ModelShape(n_layers=layers)
    lacks = set(ABSENT_HOOKS[arch])
    names = [f"blocks.{layer}.{h}" for layer in range(layers) for h in BLOCK_HOOKS
             if h not in lacks] + [h for h in GLOBAL_HOOKS if h not in lacks]
    return ModelShape.from_names(layers, names)


def model_shape(name: str) -> ModelShape:
    """Layers and hooks of a model as far as they are known without loading it.

    Built-ins are known exactly; a local checkpoint's config.json gives its layer count
    and architecture; a hub model's shape is only known to the worker that loads it.
    """
    if name in BUILTINS:
        return BUILTINS[name].shape
    if is_local_checkpoint(name):
        return shape_from_config(checkpoint_config(name))
    return ModelShape(n_layers=None)


def model_context(name: str) -> int | None:
    """A model's context length in tokens as far as it is known without loading it:
    built-ins exactly, a local checkpoint from its config.json, a hub model not at all
    (None: the worker checks the loaded model)."""
    if name in BUILTINS:
        return BUILTINS[name].n_ctx
    config = checkpoint_config(name) if is_local_checkpoint(name) else {}
    return next((v for k in CONTEXT_KEYS if type(v := config.get(k)) is int), None)


def model_heads(name: str) -> tuple[int, int] | None:
    """(layers, attention heads per layer) as far as they are known without loading the
    model: built-ins exactly, a local checkpoint from its config.json, a hub model not at
    all (None: the worker checks the loaded model)."""
    if name in BUILTINS:
        builtin = BUILTINS[name]
        return (builtin.shape.n_layers or 0), builtin.n_heads
    if not is_local_checkpoint(name):
        return None
    config = checkpoint_config(name)
    layers = model_shape(name).n_layers
    heads = next((v for k in HEAD_KEYS if type(v := config.get(k)) is int), None)
    return None if layers is None or heads is None else (layers, heads)
