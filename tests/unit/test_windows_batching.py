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
from worker.engine.windows import split_windows


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
