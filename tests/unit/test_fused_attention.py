"""The fused attention path against TransformerLens's own, on the architecture matrix.

Per architecture (tests/architectures.py): with the fused path on, per-document losses,
correct counts and every head summary equal the eager path's (float32, 1e-5 relative;
counts exact), batched with right and with left padding, and padding changes nothing;
a layer the path serves never builds its pattern (hook_pattern never runs), a layer it
does not serve has a listed reason and runs TransformerLens's path. Grouped-query
(llama, 2 key/value heads), multi-query (gpt-bigcode) and sliding windows (qwen2,
mixtral) are rows of the matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from lensbatch.errors import SettingsError
from lensbatch.evaluation import DocEvaluation
from lensbatch.jobspec import JobSpec
from lensbatch.store import schema
from tests.architectures import MATRIX
from tests.cli import count_rows, lensbatch, user_error_line
from tests.matrix import TEXTS, max_relative, relative
from worker.engine import attention_rules
from worker.engine.attention import served
from worker.engine.attention_mode import attention_mode, current_mode
from worker.engine.evaluate import analyse_tokens, tokenize
from worker.engine.models import load_model

# Architectures the fused path must serve (every attention layer): a change of
# transformers or TransformerLens that drops one fails here rather than going slow.
FUSED = {"gpt2", "gpt-neox", "llama", "gemma", "qwen2", "mixtral", "gpt-bigcode", "falcon", "phi3",
         "qwen3", "olmo2", "gemma3"}


@contextmanager
def module_calls(model: Any) -> Iterator[set[str]]:
    """The names of the model's hook points that run inside (a global module hook,
    which hooks no hook point of its own, so it changes no path)."""
    names = {id(hook): name for name, hook in model.hook_dict.items()}
    seen: set[str] = set()

    def spy(module: torch.nn.Module, args: Any, output: Any) -> None:
        if id(module) in names:
            seen.add(names[id(module)])

    handle = torch.nn.modules.module.register_module_forward_hook(spy)
    try:
        yield seen
    finally:
        handle.remove()


def worst_difference(first: list[DocEvaluation], second: list[DocEvaluation]) -> float:
    """Largest relative difference of loss and head summaries; counts must be equal."""
    worst = 0.0
    for a, b in zip(first, second, strict=True):
        assert a.metrics.n_correct == b.metrics.n_correct
        assert a.metrics.n_tokens == b.metrics.n_tokens
        assert a.hits == b.hits
        worst = max(worst, relative(a.metrics.nll_sum, b.metrics.nll_sum),
                    max_relative(a.heads, b.heads))
    return worst


def run(model: Any, docs: list[list[int]], spec: JobSpec, mode: str
        ) -> tuple[dict[str, list[DocEvaluation]], set[str]]:
    """The evaluations batched (right, left padding; fused also alone), and the hook
    points that ran."""
    with attention_mode(mode), module_calls(model) as seen:
        results = {side: analyse_tokens(model, docs, replace(spec, padding_side=side))
                   for side in ("right", "left")}
        if mode == "fused":  # padding invariance on the fused path
            results["alone"] = [analyse_tokens(model, [ids], spec)[0] for ids in docs]
    return results, seen


PATTERN_OR_SCORES = (".hook_pattern", ".hook_attn_scores")


@pytest.mark.parametrize("name", [arch.name for arch in MATRIX])
def test_fused_equals_eager(name: str, matrix_checkpoint: Callable[[str], str]) -> None:
    model = load_model(matrix_checkpoint(name), "cpu", "float32")
    docs = tokenize(model, TEXTS, None)
    spec = JobSpec(model=name)
    eager, eager_hooks = run(model, docs, spec, "eager")
    fused, fused_hooks = run(model, docs, spec, "fused")
    # Every hook point that runs on TransformerLens's path runs on the fused one, but
    # the pattern and the scores of the layers it serves (some, such as Granite's
    # scaled hook_attn_out, run only when hooked: then hooked, they must run).
    missing = {n for n in eager_hooks - fused_hooks if not n.endswith(PATTERN_OR_SCORES)}
    assert fired_when_hooked(model, docs[0], missing) == missing
    for side in ("right", "left"):
        assert worst_difference(eager[side], fused[side]) <= 1e-5, side
        assert worst_difference(fused["alone"], fused[side]) <= 1e-5, side
    layers = served(model)
    for layer, reason in layers.items():
        pattern = f"blocks.{layer}.attn.hook_pattern"
        assert pattern in eager_hooks
        assert (pattern in fused_hooks) == (reason is not None), (layer, reason)
        assert reason is None or reason in known_reasons()
    if name in FUSED:
        assert layers and all(reason is None for reason in layers.values())


def fired_when_hooked(model: Any, ids: list[int], names: set[str]) -> set[str]:
    """Which of `names` run on the fused path when a hook listens to each."""
    fired: set[str] = set()

    def note(tensor: torch.Tensor, hook: Any) -> None:
        fired.add(hook.name)

    with attention_mode("fused"), torch.inference_mode(), model.hooks(
            fwd_hooks=[(name, note) for name in names]):
        model(torch.tensor([ids]), return_type=None)
    return fired


def known_reasons() -> set[str]:
    return {*attention_rules.NOT_FUSED.values(), attention_rules.SOFTCAP,
            attention_rules.SINKS, attention_rules.QK_NORM_AFTER_ROPE, attention_rules.GATED,
            attention_rules.QUERY_SCALE, attention_rules.KEY_SCALE, attention_rules.SUBCLASS}


def test_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LENSBATCH_ATTENTION", raising=False)
    assert current_mode() == "fused"
    monkeypatch.setenv("LENSBATCH_ATTENTION", "eager")
    assert current_mode() == "eager"
    with attention_mode("fused"):
        assert current_mode() == "fused"
    monkeypatch.setenv("LENSBATCH_ATTENTION", "flash")
    with pytest.raises(SettingsError, match="LENSBATCH_ATTENTION must be one of eager, fused"):
        current_mode()
    with pytest.raises(ValueError, match="attention mode must be one of"):
        with attention_mode("quick"):
            pass


def test_a_bad_setting_is_one_line(tmp_path: Path, sqlite_url: str) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "The lamp is lit."}\n')
    env = {"LENSBATCH_DATABASE_URL": sqlite_url, "LENSBATCH_ATTENTION": "flash"}
    user_error_line(lensbatch("run", str(corpus), "--model", "toy-induction", env=env),
                    "LENSBATCH_ATTENTION must be one of eager, fused, not 'flash'")
    assert count_rows(sqlite_url, schema.jobs) == 0
