"""Metric functions on hand-made token sequences whose answers are counted by hand."""

import numpy as np
import torch

from worker.engine.documents import induction_hits
from worker.engine.token_metrics import (
    earlier_bigram_position,
    next_token_correct,
    next_token_nll,
)


def one_hot_logits(predictions: list[int], vocab: int = 10) -> torch.Tensor:
    """Logits [1, pos, vocab] whose argmax at each position is the given token."""
    logits = torch.zeros(1, len(predictions), vocab)
    for pos, tok in enumerate(predictions):
        logits[0, pos, tok] = 5.0
    return logits


def test_correct_compares_argmax_with_next_token() -> None:
    tokens = torch.tensor([[1, 2, 3, 4]])
    logits = one_hot_logits([2, 9, 4, 0])  # right, wrong, right; last predicts nothing
    assert next_token_correct(logits, tokens).tolist() == [[True, False, True]]


def test_nll_matches_log_softmax() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    tokens = torch.randint(0, 7, (2, 5))
    expected = -torch.log_softmax(logits, -1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    torch.testing.assert_close(next_token_nll(logits, tokens), expected)


def test_uniform_logits_give_log_vocab() -> None:
    nll = next_token_nll(torch.zeros(1, 4, 50), torch.tensor([[1, 2, 3, 4]]))
    torch.testing.assert_close(nll, torch.full((1, 3), float(torch.log(torch.tensor(50.0)))))


def test_earlier_bigram_positions_by_hand() -> None:
    #          pos: 0  1  2  3  4  5  6  7
    tokens = torch.tensor([5, 6, 7, 5, 6, 7, 5, 8])
    # bigrams: (5,6)@0 (6,7)@1 (7,5)@2 (5,6)@3 (6,7)@4 (7,5)@5 (5,8)@6
    assert earlier_bigram_position(tokens).tolist() == [-1, -1, -1, 0, 1, 2, -1]


def test_repeated_token_is_not_a_candidate_without_the_same_successor() -> None:
    tokens = torch.tensor([1, 2, 1, 3, 1, 2])
    # (1,2)@0 (2,1)@1 (1,3)@2 (3,1)@3 (1,2)@4 -> only position 4 repeats a bigram
    assert earlier_bigram_position(tokens).tolist() == [-1, -1, -1, -1, 0]


def test_short_sequences() -> None:
    assert earlier_bigram_position(torch.tensor([3])).tolist() == []
    assert earlier_bigram_position(torch.tensor([3, 3, 3])).tolist() == [-1, 0]


def test_induction_counts_hits_and_novel_hits() -> None:
    earlier = np.array([-1, -1, -1, 0, 1, 2, -1])
    # first copy: pos 0 wrong, 1 right, 2 wrong; second copy: 3, 4 right, 5 wrong
    correct = np.array([False, True, False, True, True, False, True])
    hits, novel = induction_hits(correct, earlier)
    assert int((earlier >= 0).sum()) == 3  # candidates
    assert hits.tolist() == [False, False, False, True, True, False, False]  # 3 and 4
    # position 3: its first occurrence (0) was wrong; 4's (1) was right
    assert novel.tolist() == [False, False, False, True, False, False, False]
