"""Loading models as TransformerLens bridges, once per process.

Three sources: built-ins made here with no network, local Hugging Face checkpoint
directories, and hub names TransformerLens knows (which need a reachable hub or a warm
Hugging Face cache; set HF_HUB_OFFLINE=1 to fail fast without one).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from lensbatch.activations import ModelShape, resolve_activations
from lensbatch.errors import JobSpecError, ModelUnavailable
from lensbatch.models import check_model_name
from worker import toy_induction
from worker.tokenizer import gpt2_tokenizer

RANDOM_SEED = 0


def _gpt2_small_random(device: torch.device, dtype: torch.dtype) -> TransformerBridge:
    """GPT-2 small's architecture (12 layers, 12 heads, d_model 768, n_ctx 1024) with
    seeded random weights: real speed and memory, meaningless predictions."""
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        hf_model = GPT2LMHeadModel(GPT2Config()).eval()
    return TransformerBridge.boot_transformers(
        "gpt2-small-random", hf_model=hf_model.to(device=device, dtype=dtype),
        tokenizer=gpt2_tokenizer(), device=device, dtype=dtype,
    )


BUILDERS: dict[str, Callable[[torch.device, torch.dtype], TransformerBridge]] = {
    "gpt2-small-random": _gpt2_small_random,
    toy_induction.NAME: toy_induction.build,
}


def _has_tokenizer_files(path: Path) -> bool:
    names = ("tokenizer.json", "vocab.json", "tokenizer.model", "tokenizer_config.json")
    return any((path / name).is_file() for name in names)


def _boot_pretrained(name: str, device: torch.device, dtype: torch.dtype) -> TransformerBridge:
    path = Path(name)
    tokenizer = None
    if path.is_dir() and not _has_tokenizer_files(path):
        # A bare checkpoint directory: assume GPT-2's vocabulary, as saved GPT-2 models use.
        tokenizer = gpt2_tokenizer()
    try:
        return TransformerBridge.boot_transformers(
            name, device=device, dtype=dtype, tokenizer=tokenizer
        )
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailable(f"cannot load model {name!r}: {first_line}") from None


@functools.lru_cache(maxsize=2)
def load_model(name: str, device: str, dtype: str) -> TransformerBridge:
    """Load (once per process, per device and dtype) and return the model in eval mode."""
    from worker.device import pick_dtype

    check_model_name(name)
    torch_device = torch.device(device)
    torch_dtype = pick_dtype(dtype, torch_device)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    builder = BUILDERS.get(name)
    if builder is not None:
        model = builder(torch_device, torch_dtype)
    else:
        model = _boot_pretrained(name, torch_device, torch_dtype)
    model.eval()
    if model.tokenizer is None:
        model.set_tokenizer(gpt2_tokenizer())
    return model


def model_card(model: TransformerBridge) -> dict[str, Any]:
    """What the seed notebook's first section prints: sizes and weight shapes."""
    cfg = model.cfg
    shapes = {
        name: list(getattr(model, name).shape)
        for name in ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_U")
    }
    return {
        "config": {
            "n_layers": int(cfg.n_layers),
            "n_heads": int(cfg.n_heads),
            "n_ctx": int(cfg.n_ctx),
            "d_model": int(cfg.d_model),
            "d_head": int(cfg.d_head),
            "d_vocab": int(cfg.d_vocab),
        },
        "weight_shapes": shapes,
    }


def loaded_shape(model: TransformerBridge) -> ModelShape:
    hooks = model.hook_dict
    return ModelShape(
        n_layers=int(model.cfg.n_layers),
        has_mlp="blocks.0.mlp.hook_post" in hooks,
        has_norm="blocks.0.ln1.hook_normalized" in hooks,
    )


def resolve_hooks(model: TransformerBridge, requested: tuple[str, ...] | list[str]) -> list[str]:
    """The full hook names `requested` stands for on this model (shorthand expanded).

    Raises JobSpecError, listing the valid names, for a name this model has no hook for.
    """
    if not requested:
        return []
    names = resolve_activations(requested, loaded_shape(model))
    hooks = model.hook_dict
    missing = [name for name in names if name not in hooks]
    if missing:
        raise JobSpecError(f"model has no hook {missing[0]!r}")
    return names


@functools.lru_cache(maxsize=2)
def model_record(name: str, device: str, dtype: str) -> dict[str, Any]:
    """The `models` row for a loaded model: where it came from, its config and weight
    shapes (computed once per process; the shapes come from derived weight tensors)."""
    card = model_card(load_model(name, device, dtype))
    return {"name": name, "source": check_model_name(name), **card}
