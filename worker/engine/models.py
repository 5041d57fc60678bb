"""Loading models as TransformerLens bridges, once per process.

The three sources and their tokenizer rules are described in lensbatch/models.py:
built-ins are made here with no network, local Hugging Face checkpoint directories and
hub names are booted by TransformerLens (hub names need a reachable hub or a warm
Hugging Face cache; set HF_HUB_OFFLINE=1 to fail fast without one).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from lensbatch.errors import JobSpecError, ModelUnavailable
from lensbatch.hooks import check_top_hooks, resolve_activations
from lensbatch.models import Source, check_loadable, has_own_tokenizer, hub_name, model_source
from lensbatch.settings import DEFAULT_CACHE_DIR
from worker.engine import attention, toy_induction
from worker.engine.card import loaded_shape, model_card
from worker.engine.fused_activations import fuse_activations
from worker.engine.fused_norms import fuse_norms
from worker.engine.tokenizer import gpt2_tokenizer

__all__ = ["BUILDERS", "load_model", "loaded_shape", "model_card", "model_record",
           "resolve_hooks", "resolve_top_hooks"]

RANDOM_SEED = 0


def _gpt2_small_random(device: torch.device, dtype: torch.dtype,
                       cache_dir: str) -> TransformerBridge:
    """GPT-2 small's architecture (12 layers, 12 heads, d_model 768, n_ctx 1024) with
    seeded random weights: real speed and memory, meaningless predictions."""
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        hf_model = GPT2LMHeadModel(GPT2Config()).eval()
    return TransformerBridge.boot_transformers(
        "gpt2-small-random", hf_model=hf_model.to(device=device, dtype=dtype),
        tokenizer=gpt2_tokenizer(cache_dir), device=device, dtype=dtype,
    )


# The built-ins of lensbatch/models.py's registry, by name: (device, dtype, cache_dir).
BUILDERS: dict[str, Callable[[torch.device, torch.dtype, str], TransformerBridge]] = {
    "gpt2-small-random": _gpt2_small_random,
    toy_induction.NAME: toy_induction.build,
    toy_induction.ABLATED_NAME: toy_induction.build_ablated,
}


def _boot_pretrained(name: str, device: torch.device, dtype: torch.dtype,
                     cache_dir: str) -> TransformerBridge:
    """A local checkpoint or hub model, loaded once, in `dtype`, by TransformerLens (a
    hub alias such as pythia-70m under its official name)."""
    tokenizer = None if has_own_tokenizer(name) else gpt2_tokenizer(cache_dir)
    source = hub_name(name) if model_source(name) == Source.HUB else None
    try:
        return TransformerBridge.boot_transformers(
            source or name, device=device, dtype=dtype, tokenizer=tokenizer
        )
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailable(f"cannot load model {name!r}: {first_line}") from None


def load_model(name: str, device: str, dtype: str,
               cache_dir: str = DEFAULT_CACHE_DIR) -> TransformerBridge:
    """Load (once per process, per device and dtype) and return the model in eval mode:
    one copy of its weights, however the callers spell the arguments."""
    return _load_model(name, device, dtype, cache_dir)


@functools.lru_cache(maxsize=2)
def _load_model(name: str, device: str, dtype: str, cache_dir: str) -> TransformerBridge:
    from worker.engine.device import pick_dtype

    check_loadable(name)  # ModelUnavailable for a name of no source, or offline and uncached
    torch_device = torch.device(device)
    torch_dtype = pick_dtype(dtype, torch_device)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    builder = BUILDERS.get(name)
    if builder is not None:
        model = builder(torch_device, torch_dtype, cache_dir)
    else:
        model = _boot_pretrained(name, torch_device, torch_dtype, cache_dir)
    model.eval()
    fuse_activations(model)
    fuse_norms(model)
    attention.install(model)
    if model.tokenizer is None:
        model.set_tokenizer(gpt2_tokenizer(cache_dir))
    return model


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


def resolve_top_hooks(model: TransformerBridge, requested: tuple[str, ...] | list[str]
                      ) -> list[str]:
    """resolve_hooks for --top-activations: hooks whose last dimension is a neuron
    (attention patterns and scores, whose last dimension is a key, are refused)."""
    names = resolve_hooks(model, requested)
    check_top_hooks(names)
    return names


@functools.lru_cache(maxsize=2)
def model_record(name: str, device: str, dtype: str,
                 cache_dir: str = DEFAULT_CACHE_DIR) -> dict[str, Any]:
    """The `models` row for a loaded model: where it came from, its config and weight
    shapes (computed once per process; the shapes come from derived weight tensors)."""
    card = model_card(load_model(name, device, dtype, cache_dir))
    return {"name": name, "source": str(model_source(name)), **card}
