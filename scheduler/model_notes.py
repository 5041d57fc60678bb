"""Lines that say which model made the numbers when its weights are not a trained
model's: random (gpt2-small-random) or set by hand (toy-induction), and the model a
command chose when no --model was given."""

from __future__ import annotations

from typing import TextIO

from lensbatch.jobspec import JobSpec
from lensbatch.models import BUILTINS

DEFAULT_MODEL_LINE = (f"no --model given: using {JobSpec.model}, GPT-2 small's architecture "
                      "with random weights; pass --model gpt2-small for trained weights")


def weights_line(model: str) -> str | None:
    """`model NAME (what its weights are)` for a built-in, None for a real checkpoint."""
    builtin = BUILTINS.get(model)
    return None if builtin is None else f"model {model} ({builtin.weights})"


def say_default_model(model: list[str] | None, models: str | None, out: TextIO) -> None:
    """Which model a command chose when given none, and why (written once it has
    succeeded: a mistake stays one line)."""
    if not model and not models:
        out.write(DEFAULT_MODEL_LINE + "\n")
