"""The per-head summaries from a fused kernel's logsumexp against the same summaries read
off the full pattern (worker/engine/summaries.py), on random batches with right and
left padding and many repeated tokens, and the fused output against eager attention."""

from __future__ import annotations

import pytest
import torch

from worker.engine import induction_groups
from worker.engine.fused_summaries import additive_mask, attend, causal_or, per_query_from_lse
from worker.engine.summaries import Positions, batch_positions, per_query_summaries


def random_batch(seed: int, n_pos: int, side: str) -> tuple[torch.Tensor, Positions]:
    """HF's additive 4D mask [batch, 1, pos, pos] (padding on `side`) and Positions."""
    generator = torch.Generator().manual_seed(seed)
    batch = 3
    tokens = torch.randint(0, 7, (batch, n_pos), generator=generator)  # many repeats
    lengths = torch.tensor([n_pos, max(1, n_pos // 2), max(1, n_pos - 3)])
    index = torch.arange(n_pos)
    if side == "left":
        first = n_pos - lengths
        valid = index[None] >= first[:, None]
    else:
        first = torch.zeros(batch, dtype=torch.long)
        valid = index[None] < lengths[:, None]
    visible = torch.ones(n_pos, n_pos, dtype=torch.bool).tril() & valid[:, None, :]
    mask = torch.where(visible, 0.0, torch.finfo(torch.float32).min)[:, None]
    width = max(int(torch.bincount(row).max()) - 1 for row in tokens)
    owned_to = first + lengths
    positions = batch_positions(tokens, valid.long(), first, owned_to, first, width)
    return mask, positions


def counted(per_query: torch.Tensor, positions: Positions) -> torch.Tensor:
    return torch.where(positions.counted[:, :, None, :], per_query, 0.0)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("n_pos", [1, 2, 9, 130])
def test_summaries_from_lse_match_the_pattern(side: str, n_pos: int) -> None:
    mask, positions = random_batch(n_pos, n_pos, side)
    generator = torch.Generator().manual_seed(1)
    q = torch.randn(3, 4, n_pos, 8, generator=generator) * 2
    k = torch.randn(3, 4, n_pos, 8, generator=generator) * 2
    scale = 8 ** -0.5
    pattern = torch.softmax(q.double() @ k.double().transpose(-1, -2) * scale + mask, -1)
    args = (positions.induction_keys, positions.induction_listed, positions.first)
    expected = per_query_summaries(pattern, *args)
    found = per_query_from_lse(q, k, mask, scale, positions)
    # Entropy is lse minus a term of about lse's size: float32's rounding of lse (here
    # up to ~30) bounds its absolute error, about 1e-5, on peaked and flat rows alike.
    torch.testing.assert_close(counted(found, positions), counted(expected.float(), positions),
                               rtol=1e-5, atol=2e-5)


def test_induction_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gathering one token group at a time sums to the same as all at once."""
    mask, positions = random_batch(5, 40, "left")
    q, k = torch.randn(2, 3, 4, 40, 8)
    whole = per_query_from_lse(q, k, mask, 0.3, positions)
    monkeypatch.setattr(induction_groups, "GATHER_ELEMENTS", 1)
    torch.testing.assert_close(per_query_from_lse(q, k, mask, 0.3, positions), whole)


def test_causal_without_a_mask() -> None:
    """No mask means causal: the same as the explicit causal mask."""
    n_pos = 20
    mask = torch.where(torch.ones(n_pos, n_pos, dtype=torch.bool).tril(), 0.0,
                       torch.finfo(torch.float32).min)[None, None]
    tokens = torch.randint(0, 5, (1, n_pos))
    zero = torch.zeros(1, dtype=torch.long)
    positions = batch_positions(tokens, torch.ones(1, n_pos, dtype=torch.long), zero,
                                torch.full((1,), n_pos), zero, n_pos)
    q, k, v = torch.randn(3, 1, 2, n_pos, 8)
    torch.testing.assert_close(per_query_from_lse(q, k, None, 0.4, positions),
                               per_query_from_lse(q, k, mask, 0.4, positions))
    torch.testing.assert_close(attend(q, k, v, None, 0.4), attend(q, k, v, mask, 0.4))


def test_boolean_masks_become_additive() -> None:
    keep = torch.tensor([[[[True, False], [True, True]]]])
    additive = additive_mask(keep, 2, torch.bfloat16)
    assert additive is not None and additive.dtype == torch.bfloat16
    assert additive[0, 0, 0, 1] == torch.finfo(torch.bfloat16).min
    assert additive[0, 0, 1].tolist() == [0.0, 0.0]


def test_one_token_repeated_through_a_long_row() -> None:
    """A row that is one token over and over (every earlier position an induction key
    of every query) gives the pattern's summaries too: groups past the smallest sizes."""
    n_pos = 300
    tokens = torch.tensor([[5] * n_pos, [1, 2] * (n_pos // 2)])
    ones = torch.ones(2, n_pos, dtype=torch.long)
    zero = torch.zeros(2, dtype=torch.long)
    positions = batch_positions(tokens, ones, zero, torch.full((2,), n_pos), zero, n_pos)
    assert max(b.queries.shape[1] for b in positions.induction_groups) == 512
    q, k = torch.randn(2, 2, 3, n_pos, 8, generator=torch.Generator().manual_seed(3))
    pattern = torch.softmax((q.double() @ k.double().transpose(-1, -2)) * 0.3 + torch.where(
        torch.ones(n_pos, n_pos, dtype=torch.bool).tril(), 0.0, -torch.inf), -1)
    args = (positions.induction_keys, positions.induction_listed, positions.first)
    expected = counted(per_query_summaries(pattern, *args).float(), positions)
    found = counted(per_query_from_lse(q, k, None, 0.3, positions), positions)
    torch.testing.assert_close(found, expected, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_only_the_causal_mask_takes_the_causal_path(dtype: torch.dtype) -> None:
    """A batch without padding has exactly the causal mask: the kernels get None (their
    causal flag) and give the same output. A padded key, a sliding window or a masked
    first key keep the mask."""
    n = 12
    causal = torch.ones(n, n, dtype=torch.bool).tril()[None, None].expand(2, 1, n, n)
    padded = causal.clone()
    padded[1, :, :, :3] = False  # row 1 left-padded by three
    window = causal & ~torch.ones(n, n, dtype=torch.bool).tril(-5)  # the last five keys
    for mask, want_causal in ((causal, True), (padded, False), (window, False)):
        additive = additive_mask(mask, n, dtype)
        assert additive is not None
        got = causal_or(mask, additive)
        assert (got is None) == want_causal
        assert causal_or(mask, additive) is got  # the same answer from the cached check
    q, k, v = (torch.randn(2, 4, n, 16) for _ in range(3))
    additive = additive_mask(causal, n, torch.float32)
    assert additive is not None
    torch.testing.assert_close(attend(q, k, v, causal_or(causal, additive), 0.25),
                               attend(q, k, v, additive, 0.25), rtol=1e-6, atol=1e-6)
