"""The architecture matrix: every decoder-only causal LM that TransformerLens's bridge
loads and a tiny config builds offline (tests/architectures.py), through lensbatch.

Per architecture: `lensbatch run` (in-process, SQLite) stores per-document losses and
correct counts equal to Hugging Face's `labels=input_ids` loss on the same tokens;
tokens equal the bridge's `to_tokens` (model default, --bos, --no-bos); metrics, head
summaries and activation statistics do not change with padding (alone, batched right,
batched left); the card tells the architecture's truth and has exactly the bridge's
weights; `heads` has a row per attention head (none without attention); one activation
shorthand resolves to the hooks the model really has, checked at submit time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from lensbatch.errors import JobSpecError
from lensbatch.hooks import get_act_name
from lensbatch.jobspec import JobSpec
from lensbatch.models import model_shape
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from lensbatch.store.head_queries import head_rows
from lensbatch.store.queries import result_rows
from lensbatch.store.report_data import model_card as stored_card
from scheduler.local import run_local
from scheduler.options import job_spec
from scheduler.output import has_no_heads
from tests.architectures import MATRIX
from tests.matrix import (
    TEXTS,
    Row,
    hf_scores,
    hugging_face,
    max_relative,
    relative,
    sliding_reach,
    write_corpus,
    write_table,
)
from worker.engine.batching import batch_budget, budget_batches
from worker.engine.card import WEIGHT_ORDER, loaded_shape, model_card
from worker.engine.evaluate import analyse_tokens, tokenize
from worker.engine.models import load_model, resolve_hooks

ROWS: list[Row] = []
# What each architecture is by design, beyond what every row is cross-checked for.
EXPECTED: dict[str, dict[str, Any]] = {
    "gpt2": {"positional": "learned", "attention": "multi-head", "norm": "LayerNorm",
             "gated_mlp": False, "parallel_attn_mlp": False, "experts": None},
    "gpt-neox": {"positional": "rotary", "attention": "multi-head", "parallel_attn_mlp": True},
    "llama": {"positional": "rotary", "attention": "grouped-query", "n_key_value_heads": 2,
              "gated_mlp": True, "norm": "RMSNorm", "experts": None},
    "gemma": {"positional": "rotary", "attention": "grouped-query", "norm": "RMSNorm"},
    "qwen2": {"sliding_window": 16, "sliding_window_layers": [1],
              "default_prepend_bos": False},
    "mixtral": {"experts": 4, "experts_per_token": 2, "sliding_window_layers": [0, 1]},
    "mamba": {"positional": "none", "attention": "none", "attention_layers": []},
    "rwkv": {"positional": "none", "attention": "none"},
    "xglm": {"positional": "fixed absolute"},
    "bloom": {"positional": "ALiBi", "default_prepend_bos": False},
    "mpt": {"positional": "ALiBi"},
    "gpt-bigcode": {"attention": "multi-query", "n_key_value_heads": 1},
    "falcon": {"attention": "multi-query", "parallel_attn_mlp": True},
    "gpt-j": {"parallel_attn_mlp": True},
    "phi": {"parallel_attn_mlp": True, "default_prepend_bos": False},
    "gemma2": {"sliding_window_layers": [0]},
    "olmo-hybrid": {"attention_layers": [1]},
    "jamba": {"attention_layers": [1], "positional": "none", "experts": 4},
    "deepseek-v3": {"attention": "multi-head latent", "experts": 4},
}
HF_EXPERTS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")


@pytest.fixture(scope="module", autouse=True)
def _table() -> Iterator[None]:
    yield
    if ROWS:
        print("\n" + write_table(ROWS))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, Path]:
    """One SQLite database for the whole matrix (a job per architecture) and the corpus."""
    tmp = tmp_path_factory.mktemp("matrix-db")
    return ensure_schema(f"sqlite:///{tmp / 'matrix.db'}"), write_corpus(tmp / "c.jsonl")


def check_card(model: Any, hf: Any, name: str, docs: list[list[int]]) -> dict[str, Any]:
    """The card's facts against the design, Hugging Face's config and the bridge."""
    card = model_card(model)
    facts = card["config"]["architecture"]
    for key, value in EXPECTED.get(name, {}).items():
        assert facts[key] == value, (name, key)
    config = hf.config
    experts = [getattr(config, k, None) for k in HF_EXPERTS]
    if facts["experts"] is not None:
        assert facts["experts"] in experts
    if facts["attention"] in ("grouped-query", "multi-query"):
        assert facts["n_key_value_heads"] in (getattr(config, "num_key_value_heads", None), 1)
    for layer in facts["attention_layers"]:
        reach = sliding_reach(model, docs[0], layer)
        if layer in facts["sliding_window_layers"]:
            assert reach < len(docs[0]) - 1 and reach <= facts["sliding_window"]
        else:
            assert reach == len(docs[0]) - 1
    for weight in WEIGHT_ORDER:  # exactly the bridge's weights, with its shapes
        if weight in card["weight_shapes"]:
            assert card["weight_shapes"][weight] == list(getattr(model, weight).shape)
        else:
            try:
                assert getattr(model, weight) is None, weight
            except (AttributeError, NotImplementedError, ValueError):
                pass
    return facts


def submit_spec(path: str, facts: dict[str, Any]) -> JobSpec:
    """The job `lensbatch submit` would store, with one activation shorthand the model
    has; a hook the model lacks is refused there, with its valid names."""
    act = "pattern" if facts["attention_layers"] else "resid_post"
    static = model_shape(path)
    lacking = [n for n in ("pattern", "hook_pos_embed", "resid_mid", "mlp_post")
               if not static.allows(get_act_name(n, 0 if n != "hook_pos_embed" else None))]
    if lacking:
        with pytest.raises(JobSpecError, match="valid names"):
            job_spec(JobSpec(model=path), lacking[0], "mean")
    return job_spec(JobSpec(model=path), act, "mean")


def padding_change(model: Any, docs: list[list[int]], spec: JobSpec) -> float:
    """Largest relative change of any number (loss, head summaries, statistics) between
    each document alone and batched with right and with left padding."""
    lengths = [len(d) for d in docs]
    assert len(set(lengths)) > 1  # rows really are padded
    assert len(budget_batches(lengths, batch_budget(None, "cpu"))) == 1  # in one batch
    alone = [analyse_tokens(model, [ids], spec)[0] for ids in docs]
    worst = 0.0
    for side in ("right", "left"):
        batched = analyse_tokens(model, docs, replace(spec, padding_side=side))
        for one, other in zip(alone, batched, strict=True):
            assert one.metrics.n_correct == other.metrics.n_correct
            assert one.hits == other.hits
            worst = max(worst, relative(one.metrics.nll_sum, other.metrics.nll_sum),
                        max_relative(one.heads, other.heads),
                        max_relative(one.stats, other.stats))
    return worst


@pytest.mark.parametrize("name", [arch.name for arch in MATRIX])
def test_architecture(name: str, matrix_checkpoint: Callable[[str], str],
                      store: tuple[Engine, Path]) -> None:
    started = time.perf_counter()
    engine, corpus = store
    path = matrix_checkpoint(name)
    model, hf = load_model(path, "cpu", "float32"), hugging_face(path)
    docs = tokenize(model, TEXTS, None)
    for prepend in (None, True, False):  # tokens: exactly the bridge's to_tokens
        assert tokenize(model, TEXTS, prepend) == [
            model.to_tokens(text, prepend_bos=prepend, truncate=False)[0].tolist()
            for text in TEXTS]
    facts = check_card(model, hf, name, docs)
    static, loaded = model_shape(path), loaded_shape(model)
    if len(facts["attention_layers"]) in (0, loaded.n_layers):  # known without loading
        assert static == loaded
    else:  # a hybrid: submit allows what some layer has, the worker picks the layers
        assert set(static.hook_names()) >= set(loaded.hook_names())
    spec = submit_spec(path, facts)
    job_id = run_local(engine, str(corpus), spec, "cpu").summary.job_id
    stored = list(result_rows(engine, job_id))
    expected = [hf_scores(hf, ids) for ids in docs]
    loss_diff = max(abs(row["loss"] - loss) for row, (loss, _) in zip(stored, expected,
                                                                       strict=True))
    assert loss_diff <= 1e-4
    assert [row["n_correct"] for row in stored] == [correct for _, correct in expected]
    heads = head_rows(engine, job_id)
    n_heads = len(facts["attention_layers"]) * int(model.cfg.n_heads)
    assert len(heads) == n_heads
    assert {row["layer"] for row in heads} == set(facts["attention_layers"])
    assert has_no_heads(stored_card(engine, path)) == (not facts["attention_layers"])
    with engine.connect() as connection:
        hooks = set(connection.scalars(select(schema.activation_stats.c.hook).where(
            schema.activation_stats.c.job_id == job_id)))
    assert hooks == set(resolve_hooks(model, spec.activations)) != set()
    padding = padding_change(model, docs, spec)
    assert padding <= 1e-5
    ROWS.append(Row(name, facts["class"], loss_diff,
                    "BOS" if facts["default_prepend_bos"] else "no BOS",
                    f"yes ({facts['attention']})" if facts["attention_layers"] else "no",
                    padding, time.perf_counter() - started))
