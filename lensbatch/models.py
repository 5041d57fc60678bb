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
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from lensbatch.errors import ModelUnavailable
from lensbatch.hooks import ModelShape


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


BUILTINS = {b.name: b for b in (
    Builtin("gpt2-small-random", ModelShape(n_layers=12), 1024,
            "GPT-2 small's architecture with seeded random weights: real speed and "
            "memory, meaningless predictions"),
    Builtin("toy-induction", ModelShape(n_layers=2, has_mlp=False, has_norm=False), 1024,
            "two attention-only layers set by hand: a previous-token head (0.1) and an "
            "induction head (1.2)"),
    Builtin("toy-induction-ablated", ModelShape(n_layers=2, has_mlp=False, has_norm=False),
            1024, "toy-induction with its induction head (1.2) switched off (zero weights): it "
            "predicts nothing, repeated text included; for comparisons"),
)}
# config.json keys that give a local checkpoint's layer count and its context length.
LAYER_KEYS = ("n_layer", "num_hidden_layers", "n_layers")
CONTEXT_KEYS = ("n_positions", "max_position_embeddings", "n_ctx")

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


def model_source(name: str) -> Source:
    """Where a model comes from, or ModelUnavailable for a name that is none of them.

    Whether a hub model's weights can be downloaded is only known on the worker.
    """
    if name in BUILTINS:
        return Source.BUILTIN
    if is_local_checkpoint(name):
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


def _local_config(name: str) -> dict[str, Any]:
    """A local checkpoint's config.json, or {} (not a checkpoint, or unreadable)."""
    if not is_local_checkpoint(name):
        return {}
    try:
        config = json.loads((Path(name) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _first_int(config: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    found = [config[k] for k in keys if type(config.get(k)) is int]
    return found[0] if found else None


def model_shape(name: str) -> ModelShape:
    """Layers and blocks of a model as far as they are known without loading it.

    Built-ins are known exactly; a local checkpoint's config.json gives its layer count
    (MLP and LayerNorm hooks are assumed; the worker checks the real model); a hub
    model's shape is only known to the worker that loads it.
    """
    if name in BUILTINS:
        return BUILTINS[name].shape
    return ModelShape(n_layers=_first_int(_local_config(name), LAYER_KEYS))


def model_context(name: str) -> int | None:
    """A model's context length in tokens as far as it is known without loading it:
    built-ins exactly, a local checkpoint from its config.json, a hub model not at all
    (None: the worker checks the loaded model)."""
    if name in BUILTINS:
        return BUILTINS[name].n_ctx
    return _first_int(_local_config(name), CONTEXT_KEYS)
