"""Top activations per neuron: the engine's reduction against every activation read off
run_with_cache, the merge's exactness, and a known answer on toy-induction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lensbatch.jobspec import JobSpec
from lensbatch.top import BINS, HookTop, merge_top, value_bins
from worker.engine.evaluate import analyse_texts_top, tokenize
from worker.engine.models import load_model

TEXTS = ["The lamp is lit, the lamp is lit, all is well at the lighthouse.",
         "Hello TransformerLens!",
         "Keepers keep logs. Keepers keep logs. Keepers keep logs.",
         "A short one.",
         "The keeper climbed the stairs; the keeper lit the lamp; the lamp shone."]
SEQS = [2, 5, 6, 9, 11]


def every_activation(model, texts: list[str], hook: str, spec: JobSpec  # type: ignore[no-untyped-def]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each document alone through run_with_cache: [entry, neuron] values and each
    entry's (seq, position), documents in order."""
    values: list[np.ndarray] = []
    seqs: list[int] = []
    positions: list[int] = []
    for seq, tokens in zip(SEQS, tokenize(model, texts, spec.prepend_bos), strict=True):
        with torch.inference_mode():
            _, cache = model.run_with_cache(torch.tensor([tokens]), names_filter=[hook])
        act = cache[hook][0].float()  # [pos, ...]
        values.append(act.reshape(act.shape[0], -1).numpy())
        seqs += [seq] * act.shape[0]
        positions += range(act.shape[0])
    return np.concatenate(values), np.array(seqs), np.array(positions)


def expected_top(values: np.ndarray, seqs: np.ndarray, positions: np.ndarray, k: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[neuron, k] by the tie rule: value descending, then seq, then position."""
    out_v, out_s, out_p = [], [], []
    for n in range(values.shape[1]):
        order = np.lexsort((positions, seqs, -values[:, n].astype(np.float64)))[:k]
        out_v.append(values[order, n])
        out_s.append(seqs[order])
        out_p.append(positions[order])
    return np.array(out_v), np.array(out_s), np.array(out_p)


@pytest.mark.parametrize("batch_tokens", [32, 4096])
def test_embed_top_is_exact_against_the_cache(batch_tokens: int) -> None:
    """hook_embed is a lookup, so every value is exact whatever the batching: the
    entries, ties included, and the counts must match the cache's to the bit."""
    model = load_model("toy-induction", "cpu", "float32")
    spec = JobSpec(model="toy-induction", top_activations=("hook_embed",), top_k=7,
                   batch_tokens=batch_tokens)
    _, (top,) = analyse_texts_top(model, TEXTS, spec, SEQS)
    values, seqs, positions = every_activation(model, TEXTS, "hook_embed", spec)
    want_v, want_s, want_p = expected_top(values, seqs, positions, 7)
    assert top.hook == "hook_embed" and top.per_head == values.shape[1]
    np.testing.assert_array_equal(top.values, want_v)
    np.testing.assert_array_equal(top.seqs, want_s)
    np.testing.assert_array_equal(top.positions, want_p)
    assert top.total == values.shape[0]
    np.testing.assert_array_equal(top.positive, (values > 0).sum(0))
    bins = value_bins(values)  # [entry, neuron]
    want_hist = np.stack([np.bincount(bins[:, n], minlength=BINS) for n in range(bins.shape[1])])
    np.testing.assert_array_equal(top.histogram, want_hist)


def test_mlp_and_head_hooks_match_the_cache(tiny_checkpoint: str) -> None:
    """A real MLP and a per-head hook, batched with padding: each kept entry is the
    cache's value at that (document, position), and no better one was left out."""
    model = load_model(tiny_checkpoint, "cpu", "float32")
    spec = JobSpec(model=tiny_checkpoint, top_activations=("blocks.1.mlp.hook_post", "z0"), top_k=5,
                   batch_tokens=48)
    _, tops = analyse_texts_top(model, TEXTS, spec, SEQS)
    assert [t.hook for t in tops] == ["blocks.1.mlp.hook_post", "blocks.0.attn.hook_z"]
    assert tops[1].per_head == 16 and tops[1].n_neurons == 64
    for top in tops:
        values, seqs, positions = every_activation(model, TEXTS, top.hook, spec)
        at = {(s, p): i for i, (s, p) in enumerate(zip(seqs, positions, strict=True))}
        rows = np.array([[at[(s, p)] for s, p in zip(top.seqs[n], top.positions[n],
                                                     strict=True)]
                         for n in range(top.n_neurons)])
        found = np.take_along_axis(values, rows.T, axis=0).T  # [neuron, k]
        np.testing.assert_allclose(top.values, found, rtol=1e-5, atol=1e-6)
        kth = np.sort(values, axis=0)[-5]  # the cache's 5th highest per neuron
        np.testing.assert_allclose(top.values[:, -1], kth, rtol=1e-5, atol=1e-6)
        assert (np.diff(top.values, axis=1) <= 0).all()
        assert top.total == values.shape[0]


def hook_top(values: np.ndarray, seqs: np.ndarray, positions: np.ndarray, k: int) -> HookTop:
    v, s, p = expected_top(values, seqs, positions, k)
    hist = np.stack([np.bincount(b, minlength=BINS) for b in value_bins(values).T])
    return HookTop("hook_embed", values.shape[1], v.astype(np.float32), s, p.astype(np.int32),
                   hist, (values > 0).sum(0), values.shape[0])


def same(a: HookTop, b: HookTop) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in
               ("values", "seqs", "positions", "histogram", "positive")) and a.total == b.total


def test_merge_is_the_top_of_the_union_and_idempotent() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(-3, 4, size=(60, 6)).astype(np.float32)  # many ties
    seqs, positions = np.repeat(np.arange(6), 10), np.tile(np.arange(10), 6)
    first, second = slice(0, 25), slice(25, 60)
    a = hook_top(values[first], seqs[first], positions[first], 8)
    b = hook_top(values[second], seqs[second], positions[second], 8)
    whole = hook_top(values, seqs, positions, 8)
    assert same(merge_top(a, b, 8), whole)
    assert same(merge_top(b, a, 8), whole)
    empty = HookTop("hook_embed", 6, np.zeros((6, 0), np.float32), np.zeros((6, 0), np.int64),
                    np.zeros((6, 0), np.int32), np.zeros((6, BINS), np.int64),
                    np.zeros(6, np.int64), 0)
    assert same(merge_top(empty, whole, 8), whole)
    # The same entries again (a redelivered task): the entries do not change.
    again = merge_top(whole, whole, 8)
    for field in ("values", "seqs", "positions"):
        assert np.array_equal(getattr(again, field), getattr(whole, field))


def test_known_answer_one_marked_token() -> None:
    """toy-induction's embedding gives each token a fixed vector: choose the dimension
    where a marked word stands above every other token of the corpus; its top contexts
    are then exactly the marked word's positions, at the embedding's value."""
    model = load_model("toy-induction", "cpu", "float32")
    marked = " lighthouse"
    texts = ["The keeper walked to the lighthouse at dusk and lit the lamp.",
             "Ships saw the light. The lighthouse stood on the rock; the lighthouse shone.",
             "Nothing marked here, only waves and gulls and rain."]
    spec = JobSpec(model="toy-induction", top_activations=("hook_embed",), top_k=5)
    tokens = tokenize(model, texts, spec.prepend_bos)
    (mark,) = model.tokenizer(marked, add_special_tokens=False)["input_ids"]
    embed = model.W_E.detach().float().numpy()
    others = sorted({t for doc in tokens for t in doc} - {mark})
    margin = embed[mark] - embed[others].max(0)
    dim = int(margin.argmax())
    assert margin[dim] > 0
    _, (top,) = analyse_texts_top(model, texts, spec, [0, 1, 2])
    where = [(seq, pos) for seq, doc in enumerate(tokens) for pos, t in enumerate(doc)
             if t == mark]
    assert len(where) == 3
    got = list(zip(top.seqs[dim].tolist(), top.positions[dim].tolist(), strict=True))
    assert got[:3] == where
    assert (top.values[dim, :3] == embed[mark, dim]).all()
    assert (top.values[dim, 3:] < embed[mark, dim]).all()
    # K smaller than the occurrences: the first ones by document and position.
    _, (two,) = analyse_texts_top(model, texts, JobSpec(
        model="toy-induction", top_activations=("hook_embed",), top_k=2), [0, 1, 2])
    assert list(zip(two.seqs[dim].tolist(), two.positions[dim].tolist(), strict=True)) == where[:2]


@pytest.mark.parametrize(("k", "tied"), [(3, False), (3, True), (40, False)])
def test_accumulator_over_batches_with_ties_zeros_and_subnormals(k: int, tied: bool) -> None:
    """TopAccumulator fed batch by batch, padded, on ReLU-like values (most entries
    exactly 0, a few -0.0 and subnormals, ties among the rest): the kept entries follow
    the tie rule, whichever way each batch is ranked (a few entries at or above the
    floor, or every entry when the floor lets too many through: a large K, or a neuron
    whose every entry ties), and the histogram and
    positive counts are value_bins' and the positive normal floats'."""
    from worker.engine.top_activations import TopAccumulator
    from worker.engine.windows import Window

    rng = np.random.default_rng(1)
    n_docs, length, pad, neurons = 12, 50, 4, 9
    values = np.maximum(rng.integers(-30, 30, size=(n_docs, length, neurons)), 0).astype(
        np.float32)  # [doc, pos, neuron]: half of them zeros, ties among the rest
    values[0, :3, 0] = -0.0
    values[1, :3, 1] = np.float32(1e-40)  # subnormal: counted, but not above zero
    if tied:
        values[:, :, 2] = 5.0  # one neuron where everything ties
    acc = TopAccumulator(["h"], k, [length] * n_docs)
    for first in range(0, n_docs, 3):  # batches of 3 documents, each left-padded by `pad`
        batch = np.full((3, length + pad, neurons), 99.0, np.float32)  # padding: never kept
        batch[:, pad:] = values[first:first + 3]
        windows = [Window(doc=first + row, start=0, end=length, score_from=0)
                   for row in range(3)]
        acc.start(windows, torch.full((3,), pad), length + pad, torch.device("cpu"))
        acc.reduce("h", torch.from_numpy(batch))
        acc.commit()
    (top,) = acc.result(list(range(n_docs)))
    flat = values.reshape(-1, neurons)
    seqs, positions = np.repeat(np.arange(n_docs), length), np.tile(np.arange(length), n_docs)
    want_v, want_s, want_p = expected_top(flat, seqs, positions, k)
    np.testing.assert_array_equal(top.values, want_v)
    np.testing.assert_array_equal(top.seqs, want_s)
    np.testing.assert_array_equal(top.positions, want_p)
    assert top.total == n_docs * length
    want_hist = np.stack([np.bincount(b, minlength=BINS) for b in value_bins(flat).T])
    np.testing.assert_array_equal(top.histogram, want_hist)
    np.testing.assert_array_equal(top.positive, (flat >= np.finfo(np.float32).tiny).sum(0))
    assert top.positive[1] == (flat[:, 1] >= 1).sum()  # the subnormals are not above zero
