"""Checks of one architecture of the matrix against Hugging Face, and the table they fill.

Each check returns what it measured, so the test asserts on it and the table
(bench-results/model-matrix.md, printed with pytest -s) reports it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
SUMMARY = REPO / "bench-results" / "model-matrix.md"
# Three documents of similar length (one padded batch, every row padded a little) that
# repeat phrases (induction candidates) and run past a 16-token sliding window.
TEXTS = [
    "The keeper lit the lamp at dusk. The keeper lit the lamp at dusk, and the ships "
    "passed the rocks safely while the keeper wrote the log.",
    "Induction heads copy what followed a token the last time it appeared: Hooked"
    "Transformer, HookedTransformer.",
    "A model reads the corpus, a model writes the results; the database keeps every "
    "number.",
]


@dataclass
class Row:
    """One line of the matrix table."""

    name: str
    architecture: str = ""
    loss_diff: float = float("nan")  # largest |lensbatch - Hugging Face| per-document loss
    bos: str = ""
    heads: str = ""
    padding: float = float("nan")  # largest relative change, alone vs batched right/left
    seconds: float = float("nan")

    def line(self) -> str:
        return (f"| {self.name} | {self.architecture} | {self.loss_diff:.1e} | {self.bos} | "
                f"{self.heads} | {self.padding:.1e} | {self.seconds:.1f} |")


def write_table(rows: list[Row]) -> str:
    header = ("| architecture | class | loss difference vs HF | BOS rule | heads | "
              "padding invariance (max rel. diff) | seconds |\n"
              "| --- | --- | --- | --- | --- | --- | --- |\n")
    text = header + "\n".join(row.line() for row in rows) + "\n"
    total = sum(row.seconds for row in rows)
    text += f"\n{len(rows)} architectures, {total:.0f} s of test time in all.\n"
    SUMMARY.parent.mkdir(exist_ok=True)
    SUMMARY.write_text(text)
    return text


def write_corpus(path: Path) -> Path:
    path.write_text("".join(json.dumps({"id": f"doc{i}", "text": text}) + "\n"
                            for i, text in enumerate(TEXTS)))
    return path


def hugging_face(path: str) -> Any:
    """The checkpoint as transformers loads it, with eager attention where it has any."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    except (ValueError, TypeError):
        model = AutoModelForCausalLM.from_pretrained(path)
    return model.eval()


def hf_scores(model: Any, ids: list[int]) -> tuple[float, int]:
    """Hugging Face's own `labels=input_ids` loss of one document, and how many of its
    next tokens the argmax predicts."""
    tokens = torch.tensor([ids])
    with torch.no_grad():
        out = model(tokens, labels=tokens)
    correct = (out.logits[0, :-1].argmax(-1) == tokens[0, 1:]).sum()
    return float(out.loss), int(correct)


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def max_relative(first: Any, second: Any) -> float:
    """Largest relative difference between two nested lists of numbers (None in the same
    places); per-head values, activation statistics."""
    if isinstance(first, dict):
        assert first.keys() == second.keys()
        return max((max_relative(first[k], second[k]) for k in first), default=0.0)
    if isinstance(first, list):
        assert len(first) == len(second)
        return max((max_relative(a, b) for a, b in zip(first, second, strict=True)),
                   default=0.0)
    if first is None or second is None:
        assert first is second
        return 0.0
    # Summaries near zero (a head's prev-token score of 1e-9) are compared absolutely.
    return 0.0 if abs(first - second) < 1e-7 else relative(first, second)


def sliding_reach(model: Any, ids: list[int], layer: int) -> int:
    """How far back (in positions) any query of layer `layer` attends, on one document."""
    seen: dict[str, torch.Tensor] = {}

    def keep(pattern: torch.Tensor, hook: Any) -> None:
        seen["pattern"] = pattern[0].detach().cpu()  # [head, query, key]

    with torch.inference_mode(), model.hooks(
            fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", keep)]):
        model(torch.tensor([ids], device=model.cfg.device), return_type=None)
    query, key = torch.nonzero(seen["pattern"].amax(0) > 0, as_tuple=True)
    return int((query - key).max())
