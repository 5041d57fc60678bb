"""Model names that need no import of torch to check (the scheduler validates with these)."""

from __future__ import annotations

import json
from pathlib import Path

from lensbatch.activations import ModelShape
from lensbatch.errors import ModelUnavailable

# Built-in models need no network, and their shapes are known without building them.
BUILTIN_SHAPES = {
    "gpt2-small-random": ModelShape(n_layers=12),
    # Two attention-only layers without LayerNorm (worker/toy_induction.py).
    "toy-induction": ModelShape(n_layers=2, has_mlp=False, has_norm=False),
}
BUILTIN_MODELS = tuple(BUILTIN_SHAPES)


def is_local_checkpoint(name: str) -> bool:
    return (Path(name) / "config.json").is_file()


def check_model_name(name: str) -> str:
    """Return the model's source (builtin, local or hub), or raise ModelUnavailable.

    Hub names are checked against TransformerLens's registry; whether the weights can be
    downloaded is only known on the worker.
    """
    if name in BUILTIN_MODELS:
        return "builtin"
    if is_local_checkpoint(name):
        return "local"
    if Path(name).exists():
        raise ModelUnavailable(f"{name} is not a Hugging Face checkpoint directory "
                               "(no config.json)")
    from transformer_lens.supported_models import OFFICIAL_MODEL_NAMES, get_official_model_name

    try:
        official = get_official_model_name(name)
    except ValueError:
        official = None
    if official in OFFICIAL_MODEL_NAMES:
        return "hub"
    builtins = ", ".join(BUILTIN_MODELS)
    raise ModelUnavailable(
        f"unknown model {name!r}: not a built-in ({builtins}), not a local checkpoint "
        "directory, and not a model TransformerLens knows"
    )


def model_shape(name: str) -> ModelShape:
    """Layers and blocks of a model as far as they are known without loading it.

    Built-ins are known exactly; a local checkpoint's config.json gives its layer count;
    a hub model's shape is only known to the worker that loads it.
    """
    if name in BUILTIN_SHAPES:
        return BUILTIN_SHAPES[name]
    if is_local_checkpoint(name):
        try:
            config = json.loads((Path(name) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ModelShape(n_layers=None)
        for key in ("n_layer", "num_hidden_layers", "n_layers"):
            if isinstance(config.get(key), int):
                # MLP and LayerNorm hooks are assumed; the worker checks the real model.
                return ModelShape(n_layers=config[key])
    return ModelShape(n_layers=None)
