"""The models of one submission: `--model A --model B ...` or a `--models FILE` listing
them in order (training checkpoints, say), each made into a checked job spec.

The file has one model a line: a built-in, a hub name, or a checkpoint directory
(relative to the file's folder, or to the current one); `MODEL STEP` gives the
checkpoint's training step, which the sweep report uses as its axis. Blank lines and
lines starting with # are skipped.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lensbatch.ablation import parse_layers
from lensbatch.errors import UserError
from lensbatch.jobspec import JobSpec
from lensbatch.models import BUILTINS, is_local_checkpoint, model_heads
from lensbatch.store.jobs import Member
from scheduler.options import job_spec


def _model_and_step(line: str) -> tuple[str, int | None]:
    parts = line.rsplit(None, 1)
    if len(parts) == 2 and parts[1].isdigit():
        return parts[0], int(parts[1])
    return line, None


def read_models_file(path: str) -> list[tuple[str, str, int | None]]:
    """(where, model, step) per listed model, `where` being FILE:LINE."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    folder = Path(path).parent
    found = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, step = _model_and_step(line)
        if name not in BUILTINS and is_local_checkpoint(str(folder / name)):
            name = str(folder / name)
        found.append((f"{path}:{number}", name, step))
    if not found:
        raise UserError(f"{path} lists no model")
    return found


def members(models: list[str] | None, models_file: str | None, base: JobSpec,
            activations: str | None, stats: str | None) -> list[Member]:
    """One checked member per model, in order; the default model when none is given."""
    if models and models_file:
        raise UserError("give the models with --model or with --models FILE, not both")
    if models_file:
        listed = read_models_file(models_file)
    else:
        listed = [("--model", name, None) for name in (models or [base.model])]
    out = []
    for where, name, step in listed:
        try:
            spec = job_spec(replace(base, model=name), activations, stats)
        except UserError as exc:
            if models_file is None:
                raise
            raise UserError(f"{where}: {exc}") from None
        out.append(Member(spec, step))
    return out


def head_members(chosen: list[Member], layers: str | None) -> list[Member]:
    """`--ablate-each-head`: the one model unablated, then one member per head of
    `layers` (default every layer) with that head ablated, in layer and head order."""
    if len(chosen) != 1:
        raise UserError("--ablate-each-head takes one model")
    base = chosen[0].spec
    if base.ablate:
        raise UserError("give --ablate or --ablate-each-head, not both")
    shape = model_heads(base.model)
    if shape is None:
        raise UserError(f"--ablate-each-head needs the heads of {base.model} before it is "
                        "loaded (a built-in or a local checkpoint); name them with --ablate")
    n_layers, n_heads = shape
    return [chosen[0], *(Member(replace(base, ablate=((layer, head),)))
                         for layer in parse_layers(layers, n_layers)
                         for head in range(n_heads))]


def ablation_choice(chosen: list[Member], each_head: bool, layers: str | None) -> list[Member]:
    """The members, made into an ablation sweep with --ablate-each-head."""
    if each_head:
        return head_members(chosen, layers)
    if layers is not None:
        raise UserError("--ablate-layers goes with --ablate-each-head")
    return chosen
