"""Model names that need no import of torch to check (the scheduler validates with these)."""

from __future__ import annotations

from pathlib import Path

from lensbatch.errors import ModelUnavailable

# Built-in models need no network. toy-induction arrives with the metrics work.
BUILTIN_MODELS = ("gpt2-small-random",)


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
