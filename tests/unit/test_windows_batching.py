"""Sliding windows score every target once; batching restores the original order."""

import pytest
import torch

from worker.engine.batching import (
    ACCELERATOR_BATCH_TOKENS,
    CPU_BATCH_TOKENS,
    batch_budget,
    budget_batches,
    pad,
)
from worker.engine.windows import disjoint_windows, split_windows


@pytest.mark.parametrize(("n", "n_ctx", "stride"), [(5, 8, 4), (8, 8, 4), (9, 8, 4),
                                                    (100, 16, 8), (100, 16, 15), (37, 10, 3)])
def test_each_target_scored_once_within_context(n: int, n_ctx: int, stride: int) -> None:
    tokens = list(range(n))
    windows = split_windows(0, tokens, n_ctx, stride)
    targets: list[int] = []
    for w in windows:
        assert len(w.tokens) <= n_ctx
        assert w.tokens == tokens[w.start:w.start + len(w.tokens)]
        targets += [w.start + p + 1 for p in range(w.score_from, len(w.tokens) - 1)]
    assert targets == list(range(1, n))


def test_later_windows_keep_preceding_context() -> None:
    windows = split_windows(0, list(range(40)), n_ctx=16, stride=8)
    assert [w.start for w in windows] == [0, 8, 16, 24]
    assert [w.score_from for w in windows] == [0, 7, 7, 7]


def test_bad_stride_is_rejected() -> None:
    with pytest.raises(ValueError):
        split_windows(0, list(range(40)), n_ctx=16, stride=16)


def test_budget_batches_respect_budget_and_cover_all() -> None:
    lengths = [5, 50, 7, 20, 20, 3, 64]
    batches = budget_batches(lengths, budget=64)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 64


@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_places_tokens_and_mask(side: str) -> None:
    tokens, mask, offsets = pad([[1, 2, 3], [4]], pad_id=0, side=side)
    if side == "right":
        assert tokens.tolist() == [[1, 2, 3], [4, 0, 0]]
        assert offsets.tolist() == [0, 0]
    else:
        assert tokens.tolist() == [[1, 2, 3], [0, 0, 4]]
        assert offsets.tolist() == [0, 2]
    assert mask.sum(dim=1).tolist() == [3, 1]
    assert mask.dtype == torch.long


def test_local_runs_join_tasks_into_batch_sized_chunks() -> None:
    from scheduler.local import local_chunks

    tasks = [[0, 1], [2], [3, 4, 5], [6], [7]]
    # queue-sized tasks stay as they are when a batch is no larger than a task
    assert local_chunks(tasks, 8192, 16384) == tasks
    # four tasks of 1,000 tokens fill one 4,000-token batch
    chunks = local_chunks(tasks, 4000, 1000)
    assert chunks == [[0, 1, 2, 3, 4, 5, 6], [7]]


def test_batch_budget_is_the_jobs_or_the_devices() -> None:
    assert batch_budget(300, "cpu") == 300
    assert batch_budget(300, "cuda:0") == 300
    assert batch_budget(None, "cpu") == CPU_BATCH_TOKENS
    assert batch_budget(None, torch.device("cuda", 0)) == ACCELERATOR_BATCH_TOKENS
    assert batch_budget(None, "mps") == ACCELERATOR_BATCH_TOKENS


def test_a_cpu_batch_holds_less_padding_than_an_accelerators() -> None:
    from worker.engine.batching import batch_fill

    assert batch_fill("cpu") == batch_fill(torch.device("cpu")) > batch_fill("cuda:0")
    lengths = [1000, 950, 900, 800, 700, 600]  # 8,192 fits six rows of 1,000
    for device in ("cpu", "cuda:0"):
        fill = batch_fill(device)
        for batch in budget_batches(lengths, 8192, fill):
            real = sum(lengths[i] for i in batch)
            assert real >= fill * len(batch) * max(lengths[i] for i in batch)
    assert len(budget_batches(lengths, 8192, batch_fill("cpu"))) > len(
        budget_batches(lengths, 8192, batch_fill("cuda:0")))


def scored_pairs(tokens: list[int], n_ctx: int) -> list[tuple[list[int], list[int]]]:
    """Each disjoint window as lm-eval's (context, continuation): the tokens before the
    first scored target, and the targets it scores."""
    pairs = []
    for w in disjoint_windows(0, tokens, n_ctx):
        scored = w.scored()
        assert w.tokens == tokens[w.start:w.start + len(w.tokens)] and len(w.tokens) <= n_ctx
        assert w.targets() == tokens[w.start + 1:w.start + len(w.tokens) + 1]
        context = tokens[w.start:w.start + scored.start + 1]
        pairs.append((context, w.targets()[scored.start:scored.stop]))
    return pairs


# lm-eval 0.4.13's make_disjoint_window(get_rolling_token_windows(T, prefix_token=0,
# max_seq_len=4, context_len=1)), worked out by hand from lm_eval/utils.py: the first
# window predicts T[:4] from the prefix; later ones predict 4 more with one token of
# context; the last is pushed right, its context everything before what it predicts.
LM_EVAL_PAIRS_N_CTX_4 = {
    3: [([0], [1, 2, 3])],
    4: [([0], [1, 2, 3, 4])],
    5: [([0], [1, 2, 3, 4]), ([1, 2, 3, 4], [5])],
    8: [([0], [1, 2, 3, 4]), ([4], [5, 6, 7, 8])],
    9: [([0], [1, 2, 3, 4]), ([4], [5, 6, 7, 8]), ([5, 6, 7, 8], [9])],
    11: [([0], [1, 2, 3, 4]), ([4], [5, 6, 7, 8]), ([7, 8], [9, 10, 11])],
}


@pytest.mark.parametrize("n", sorted(LM_EVAL_PAIRS_N_CTX_4))
def test_disjoint_windows_score_lm_evals_pairs(n: int) -> None:
    tokens = list(range(n + 1))  # the prefix (BOS, here 0) and n tokens of text
    assert scored_pairs(tokens, n_ctx=4) == LM_EVAL_PAIRS_N_CTX_4[n]


def test_disjoint_windows_read_each_position_once_until_the_last_window() -> None:
    windows = disjoint_windows(0, list(range(2000)), n_ctx=1024)
    assert [(w.start, len(w.tokens), w.score_from) for w in windows] == [
        (0, 1024, 0), (975, 1024, 49)]
    assert [w.next_token for w in windows] == [1024, 1999]
    assert [list(w.owned()) == list(w.scored()) for w in windows] == [True, True]
    # a document that fits reads all its tokens, the last one included, as before
    (short,) = disjoint_windows(0, list(range(10)), n_ctx=16)
    assert short.next_token is None and list(short.scored()) == list(range(9))
    assert list(short.owned()) == list(range(10))


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 31, 32, 33, 50, 100])
def test_disjoint_windows_match_lm_evals_own_function(n: int) -> None:
    """Against lm_eval.utils itself, where lm-evaluation-harness is installed."""
    utils = pytest.importorskip("lm_eval.utils")
    text = list(range(100, 100 + n))
    for n_ctx in (2, 3, 16):
        expected = [utils.make_disjoint_window(pair) for pair in utils.get_rolling_token_windows(
            token_list=text, prefix_token=0, max_seq_len=n_ctx, context_len=1)]
        assert scored_pairs([0, *text], n_ctx) == [(list(a), list(b)) for a, b in expected]
