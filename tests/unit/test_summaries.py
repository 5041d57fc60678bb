"""Per-head summaries and activation statistics, reduced in hooks during the scoring pass,
against direct computations from run_with_cache, one document and one window at a time."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lensbatch.jobspec import JobSpec
from worker.engine.evaluate import DocEvaluation, analyse_tokens, tokenize
from worker.engine.models import load_model
from worker.engine.summaries import batch_positions, causal_entropy
from worker.engine.token_metrics import earlier_bigram_position
from worker.engine.windows import document_windows

TEXTS = [
    "Hello TransformerLens!",
    "The lighthouse keeper wrote in the log: the lamp is lit, the lamp is lit, all is well.",
    "Induction heads copy what followed a token last time it appeared in the context.",
    "A",
    "one two three one two three one two three",
]
ALL_STATS = ("mean", "std", "norm", "absmax", "frac_zero")


@pytest.fixture(scope="module")
def model(tiny_checkpoint: str):  # type: ignore[no-untyped-def]
    return load_model(tiny_checkpoint, "cpu", "float32")


def window_sums(model, tokens: list[int], owned: range) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    """Sums and counts of the four summaries over `owned` query positions of one window,
    by loops over run_with_cache's patterns, as the definitions read."""
    with torch.inference_mode():
        _, cache = model.run_with_cache(torch.tensor([tokens]))
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    sums = {f: torch.zeros(n_layers, n_heads, dtype=torch.float64)
            for f in ("prev", "induction", "entropy", "bos")}
    counts = dict.fromkeys(sums, 0)
    for layer in range(n_layers):
        pattern = cache["pattern", layer][0].double()  # [head, q, k]
        for q in owned:
            row = pattern[:, q]
            after_earlier = [j + 1 for j in range(q) if tokens[j] == tokens[q]]
            if q >= 1:
                sums["prev"][layer] += row[:, q - 1]
                counts["prev"] += layer == 0
            if after_earlier:
                sums["induction"][layer] += row[:, after_earlier].sum(-1)
                counts["induction"] += layer == 0
            sums["entropy"][layer] += -(row * row.log()).nan_to_num().sum(-1)
            sums["bos"][layer] += row[:, 0]
            counts["entropy"] += layer == 0
            counts["bos"] += layer == 0
    return {**sums, **{f"n_{k}": torch.tensor(v) for k, v in counts.items()}}


def reference_heads(model, tokens: list[int], stride: int,  # type: ignore[no-untyped-def]
                    layout: str = "sliding") -> dict[str, torch.Tensor]:
    """Each window scored on its own, sums added up over the windows, then divided."""
    total: dict[str, torch.Tensor] = {}
    for window in document_windows(0, tokens, int(model.cfg.n_ctx), layout, stride):
        part = window_sums(model, window.tokens, window.owned())
        total = {k: total.get(k, 0) + v for k, v in part.items()}
    names = {"prev": "prev_token_score", "induction": "induction_score",
             "entropy": "attn_entropy", "bos": "bos_attention"}
    return {names[k]: total[k] / total[f"n_{k}"] for k in names if total[f"n_{k}"] > 0}


def assert_heads_close(found: DocEvaluation, expected: dict[str, torch.Tensor],
                       rel: float = 1e-5) -> None:
    for field, values in found.heads.items():
        if field not in expected:
            assert all(v is None for row in values for v in row), field
            continue
        torch.testing.assert_close(torch.tensor(values, dtype=torch.float64), expected[field],
                                   rtol=rel, atol=1e-7)


def test_head_scores_match_run_with_cache_one_document_at_a_time(model) -> None:  # type: ignore[no-untyped-def]
    docs = tokenize(model, TEXTS, prepend_bos=True)
    found = analyse_tokens(model, docs, JobSpec(batch_tokens=256))
    for tokens, evaluation in zip(docs, found, strict=True):
        assert_heads_close(evaluation, reference_heads(model, tokens, stride=32))
    assert found[3].heads["prev_token_score"][0][0] is not None  # BOS + "A": one pair
    assert found[0].heads["induction_score"][0][0] is None  # no repeated token


def test_head_scores_of_a_long_document_respect_the_windows(model) -> None:  # type: ignore[no-untyped-def]
    tokens = tokenize(model, [" ".join(TEXTS[1:3]) * 4], prepend_bos=True)[0]
    assert len(tokens) > 2 * model.cfg.n_ctx
    (found,) = analyse_tokens(model, [tokens], JobSpec(stride=24))
    assert found.metrics.n_windows > 2
    assert_heads_close(found, reference_heads(model, tokens, stride=24))


def test_head_scores_of_disjoint_windows_respect_the_windows(model) -> None:  # type: ignore[no-untyped-def]
    """Every position a disjoint window reads is reported once: the windows do not
    overlap but for the last, which reports only the positions it scores."""
    tokens = tokenize(model, [" ".join(TEXTS[1:3]) * 4], prepend_bos=True)[0]
    spec = JobSpec(windows="disjoint", activations=("pattern",), stats=ALL_STATS)
    (found,) = analyse_tokens(model, [tokens], spec)
    assert found.metrics.n_windows > 2
    assert_heads_close(found, reference_heads(model, tokens, 0, "disjoint"))


def stats_by_hand(model, tokens: list[int], hook: str) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """The five statistics per head (or one group) from the cache, with plain torch."""
    with torch.inference_mode():
        _, cache = model.run_with_cache(torch.tensor([tokens]))
    x = cache[hook][0].double()
    if hook.endswith("hook_pattern"):  # [head, q, k]: each query's visible keys
        visible = torch.ones(x.shape[-1], x.shape[-1], dtype=torch.bool).tril()
        groups = [(h[visible], [h[q, :q + 1] for q in range(x.shape[-1])]) for h in x]
    elif x.ndim == 3:  # [pos, head, d_head]
        groups = [(x[:, h].flatten(), list(x[:, h])) for h in range(x.shape[1])]
    else:  # [pos, d_model]
        groups = [(x.flatten(), list(x))]
    out: dict[str, list[float]] = {s: [] for s in ("mean", "std", "norm", "absmax", "frac_zero")}
    for flat, rows in groups:
        out["mean"].append(float(flat.mean()))
        out["std"].append(float(flat.std(unbiased=False)))
        out["norm"].append(float(torch.stack([r.norm() for r in rows]).mean()))
        out["absmax"].append(float(flat.abs().max()))
        out["frac_zero"].append(float((flat == 0).double().mean()))
    return out


@pytest.mark.parametrize("hook", ["blocks.1.attn.hook_pattern", "blocks.0.hook_resid_post",
                                  "blocks.1.mlp.hook_post", "blocks.0.attn.hook_z"])
def test_selected_hook_statistics_match_the_cache(model, hook: str) -> None:  # type: ignore[no-untyped-def]
    docs = tokenize(model, TEXTS, prepend_bos=True)
    spec = JobSpec(activations=(hook,), stats=ALL_STATS, batch_tokens=200)
    for tokens, evaluation in zip(docs, analyse_tokens(model, docs, spec), strict=True):
        expected = stats_by_hand(model, tokens, hook)
        for stat in ALL_STATS:
            assert evaluation.stats[hook][stat] == pytest.approx(expected[stat], rel=1e-5,
                                                                 abs=1e-6), stat


def test_shorthand_and_full_name_are_the_same_hook(model) -> None:  # type: ignore[no-untyped-def]
    docs = tokenize(model, TEXTS[1:2], prepend_bos=True)
    short = analyse_tokens(model, docs, JobSpec(activations=("pattern",), stats=("mean",)))
    full = analyse_tokens(model, docs, JobSpec(activations=("blocks.0.attn.hook_pattern",),
                                               stats=("mean",)))
    assert set(short[0].stats) == {"blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"}
    assert short[0].stats["blocks.0.attn.hook_pattern"] == full[0].stats[
        "blocks.0.attn.hook_pattern"]


def as_numbers(evaluation: DocEvaluation) -> list[float]:
    values = [v for field in evaluation.heads.values() for row in field for v in row
              if v is not None]
    values += [v for per_stat in evaluation.stats.values() for vs in per_stat.values()
               for v in vs]
    return values


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("budget", [64, 200, 100000])
def test_summaries_do_not_depend_on_batch_or_padding(model, side: str, budget: int) -> None:  # type: ignore[no-untyped-def]
    docs = tokenize(model, TEXTS, prepend_bos=True)
    spec = JobSpec(activations=("pattern", "resid_post", "z"), stats=ALL_STATS)
    alone = [analyse_tokens(model, [d], replace(spec, batch_tokens=1))[0] for d in docs]
    together = analyse_tokens(model, docs, replace(spec, batch_tokens=budget,
                                                   padding_side=side))
    for a, b in zip(alone, together, strict=True):
        assert [h.position for h in a.hits] == [h.position for h in b.hits]
        assert as_numbers(b) == pytest.approx(as_numbers(a), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("side", ["right", "left"])
def test_batched_earlier_bigrams_match_the_per_window_function(side: str) -> None:
    from worker.engine.batching import pad

    generator = torch.Generator().manual_seed(0)
    rows = [torch.randint(0, 4, (n,), generator=generator).tolist() for n in (1, 2, 9, 30)]
    tokens, mask, offsets = pad(rows, pad_id=3, side=side)  # the pad id is also a token
    n = tokens.shape[1]
    positions = batch_positions(tokens, mask, offsets, offsets + n, offsets, width=n)
    for row, seq in enumerate(rows):
        found = positions.earlier_bigram[row, offsets[row]:offsets[row] + len(seq) - 1]
        expected = earlier_bigram_position(torch.tensor(seq))
        assert torch.where(found >= 0, found - offsets[row], -1).tolist() == expected.tolist()


@pytest.mark.parametrize("n_pos", [1, 2, 7, 33])
def test_causal_entropy_reads_only_the_keys_a_query_sees(n_pos: int) -> None:
    torch.manual_seed(n_pos)
    future = torch.ones(n_pos, n_pos, dtype=torch.bool).triu(1)
    scores = torch.randn(2, 3, n_pos, n_pos).masked_fill(future, float("-inf"))
    pattern = scores.softmax(-1)  # [batch, head, query, key]
    expected = torch.special.entr(pattern).sum(-1)  # every key, the zeros included
    torch.testing.assert_close(causal_entropy(pattern), expected, rtol=1e-6, atol=1e-6)
