"""Attention summaries per head and statistics of selected activations, as pure functions.

They run inside hooks, on a padded batch of windows, and reduce each activation to a
few numbers per row before the hook returns: sums over the positions a window reports
(Window.owned) and how many there were. Sums from the windows of one document add up,
so a long document is averaged with every position counted once. Positions are
selected with torch.where, never by multiplying, so the padding rows (which may hold
NaN) never reach a sum; that is also why padding cannot change a number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from worker.engine import head_kernel
from worker.engine.induction_groups import InductionGroups, induction_groups

# What activation_moments returns per (row, group), in this order.
MOMENTS = ("count", "total", "m2", "norm_sum", "positions", "absmax", "zeros")
_COUNT, _TOTAL, _M2, _NORM, _POSITIONS, _ABSMAX, _ZEROS = range(len(MOMENTS))
# Query blocks of causal_entropy: 2 already skips most of the zeros past the diagonal.
ENTROPY_BLOCKS = 4


@dataclass(frozen=True)
class Positions:
    """Which entries of a padded batch count, computed once per batch on its device."""

    owned: torch.Tensor  # [batch, pos] bool: query positions the window reports
    first: torch.Tensor  # [batch] int64: index of each row's first real token
    visible: torch.Tensor  # [batch, query, key] bool: real keys at or before a real query
    # The keys k that follow an earlier occurrence of the query's token (tok[k-1] ==
    # tok[q], k-1 < q, both inside the window), listed per query: few per query in
    # text, so gathering them is much cheaper than masking every key.
    induction_keys: torch.Tensor  # [batch, query, width] int64
    induction_listed: torch.Tensor  # [batch, query, width] bool: which entries are keys
    counted: torch.Tensor  # [batch, 4, pos] bool: queries each HEAD_SCORE_NAMES averages over
    # For each position i, the first earlier j (padded coordinates) with the same bigram
    # (tok[j], tok[j+1]) == (tok[i], tok[i+1]) inside the window, or -1: the induction
    # candidates of token_metrics.earlier_bigram_position, for the whole batch at once.
    earlier_bigram: torch.Tensor  # [batch, pos - 1] int64
    # The same induction keys grouped by (row, token), for the fused attention path.
    induction_groups: InductionGroups

    @property
    def counts(self) -> torch.Tensor:  # [batch, 4] int64
        return self.counted.sum(-1)


def batch_positions(
    tokens: torch.Tensor,  # [batch, pos] int64
    mask: torch.Tensor,  # [batch, pos] 0/1: real tokens
    owned_from: torch.Tensor,  # [batch] int64: first owned position, padded coordinates
    owned_to: torch.Tensor,  # [batch] int64: end (exclusive) of the owned positions
    first: torch.Tensor,  # [batch] int64: first real position (the padding offset)
    width: int,  # at least the most earlier occurrences a query has of its token (and >= 1)
    groups: InductionGroups | None = None,  # induction_groups of the batch, or found here
) -> Positions:
    """`groups` comes from the CPU copies of tokens and mask: left out, it is found from
    `tokens`, which on an accelerator waits for the device."""
    n_pos = tokens.shape[1]
    index = torch.arange(n_pos, device=tokens.device)
    valid = mask.bool()
    owned = (index >= owned_from[:, None]) & (index < owned_to[:, None])
    causal = torch.ones(n_pos, n_pos, dtype=torch.bool, device=tokens.device).tril()
    visible = causal & valid[:, :, None] & valid[:, None, :]
    # same[b, q, j]: an earlier real position j < q holds the query's token.
    same = (tokens[:, :, None] == tokens[:, None, :]) & visible & ~torch.eye(
        n_pos, dtype=torch.bool, device=tokens.device)
    n_earlier = same.sum(-1)  # [batch, query]
    # topk puts every True first; the key after earlier position j is j + 1. The
    # caller counts `width` on the CPU, so that no device value is waited for here.
    width = max(min(width, n_pos), 1)
    earlier = same.to(torch.uint8).topk(width, dim=-1, sorted=True).indices
    listed = torch.arange(width, device=tokens.device) < n_earlier[..., None]
    keys = torch.where(listed, earlier + 1, 0)
    has_previous = index[None, :] > first[:, None]
    counted = torch.stack((owned & has_previous, owned & (n_earlier > 0), owned, owned), dim=1)
    bigram = same[:, :-1, :-1] & same[:, 1:, 1:]  # [batch, i, j]: j < i, same bigram
    if n_pos > 1:
        first_match = bigram.to(torch.uint8).argmax(-1)  # argmax keeps the first True
        earlier_bigram = torch.where(bigram.any(-1), first_match, -1)
    else:
        earlier_bigram = torch.empty(tokens.shape[0], 0, dtype=torch.long, device=tokens.device)
    if groups is None:
        groups = induction_groups(tokens.cpu(), mask.cpu(), tokens.device)
    return Positions(owned, first, visible, keys, listed, counted, earlier_bigram, groups)


def head_sums(
    pattern: torch.Tensor,  # [batch, head, query, key]
    positions: Positions,
) -> torch.Tensor:  # [batch, 4, head] float32: HEAD_SCORE_NAMES summed over counted queries
    """Sums of the four per-head attention summaries; divide by Positions.counts.

    prev_token_score: attention from q to q - 1. induction_score: total attention to
    the positions right after earlier occurrences of the query's token. attn_entropy:
    entropy of the query's attention (nats). bos_attention: attention to the window's
    first position (BOS when one is prepended), the usual attention sink.
    """
    return _head_sums(pattern, positions.induction_keys, positions.induction_listed,
                      positions.first, positions.counted)


def _head_sums(
    pattern: torch.Tensor,  # [batch, head, query, key]
    induction_keys: torch.Tensor,  # [batch, query, width] int64
    induction_listed: torch.Tensor,  # [batch, query, width] bool
    first: torch.Tensor,  # [batch] int64
    counted: torch.Tensor,  # [batch, 4, query] bool
) -> torch.Tensor:  # [batch, 4, head] float32
    if head_kernel.usable(pattern):
        per_query = head_kernel.per_query(pattern, induction_keys, induction_listed, first)
    else:
        per_query = per_query_summaries(pattern, induction_keys, induction_listed, first)
    return torch.where(counted[:, :, None, :], per_query, 0.0).sum(-1)


def per_query_summaries(
    pattern: torch.Tensor,  # [batch, head, query, key]
    induction_keys: torch.Tensor,  # [batch, query, width] int64
    induction_listed: torch.Tensor,  # [batch, query, width] bool
    first: torch.Tensor,  # [batch] int64
) -> torch.Tensor:  # [batch, 4, head, query] float32: prev, induction, entropy, bos
    """The four summaries of every query row, with tensor operations (any device)."""
    batch, n_heads, n_query, _ = pattern.shape
    prev = F.pad(pattern.diagonal(offset=-1, dim1=-2, dim2=-1), (1, 0))  # [batch, head, q]
    keys = induction_keys[:, None].expand(-1, n_heads, -1, -1)
    induction = torch.where(induction_listed[:, None], pattern.gather(-1, keys), 0).sum(-1)
    entropy = causal_entropy(pattern)
    bos = pattern.gather(-1, first[:, None, None, None].expand(batch, n_heads, n_query, 1))
    return torch.stack((prev, induction, entropy, bos.squeeze(-1)), dim=1).float()


def causal_entropy(
    pattern: torch.Tensor,  # [batch, head, query, key], zero past each query
) -> torch.Tensor:  # [batch, head, query]
    """Entropy of each query's attention, in nats: -sum over keys of p log p.

    A causal pattern holds zeros past the query (and entr(0) = 0), so each block of
    queries reads only the keys up to its last query: about half the logarithms of the
    whole square, which on a CPU makes the entropy twice as fast.
    """
    n_query = pattern.shape[-2]
    step = max(1, -(-n_query // ENTROPY_BLOCKS))
    return torch.cat([torch.special.entr(pattern[..., start:start + step, :start + step]).sum(-1)
                      for start in range(0, n_query, step)], dim=-1)


def as_groups(
    activation: torch.Tensor, kind: str
) -> torch.Tensor:  # [batch, group, pos, feature]
    """A hook's activation with its heads (if any) as groups and positions third."""
    if kind == "attention":  # [batch, head, query, key]
        return activation
    if kind == "head":  # [batch, pos, head, d_head]
        return activation.transpose(1, 2)
    return activation.reshape(activation.shape[0], activation.shape[1], -1)[:, None]


def activation_moments(
    activation: torch.Tensor,
    kind: str,
    positions: Positions,
    stats: tuple[str, ...],
) -> torch.Tensor:  # [batch, group, len(MOMENTS)] float32
    """What the selected statistics need, over the positions each row reports.

    For attention-shaped hooks the features of a query are the keys it can see (at or
    before it, inside the window), so padding and future keys never count.
    """
    values = as_groups(activation, kind).float()  # [batch, group, pos, feature]
    rows = positions.owned[:, None, :, None]  # [batch, 1, pos, 1]
    # [batch, 1, pos, feature or 1]: the same for every group, so it is broadcast, never
    # expanded (an attention hook's groups are its heads, each a [pos, pos] pattern).
    keep = rows & positions.visible[:, None] if kind == "attention" else rows
    out = values.new_zeros(values.shape[0], values.shape[1], len(MOMENTS))
    out[..., _COUNT] = keep.expand(-1, -1, -1, values.shape[-1]).sum((2, 3)).float()
    kept = torch.where(keep, values, 0.0)
    out[..., _TOTAL] = kept.sum((2, 3))
    if "std" in stats:
        mean = out[..., _TOTAL] / out[..., _COUNT].clamp(min=1)
        centred = torch.where(keep, values - mean[..., None, None], 0.0)
        out[..., _M2] = centred.square().sum((2, 3))
    if "norm" in stats:
        norms = torch.linalg.vector_norm(kept, dim=-1)  # [batch, group, pos]
        out[..., _NORM] = torch.where(positions.owned[:, None], norms, 0.0).sum(-1)
        out[..., _POSITIONS] = positions.owned.sum(-1, keepdim=True).float()
    if "absmax" in stats:  # the entries left out are 0, which never exceeds an |x|
        out[..., _ABSMAX] = torch.maximum(kept.amax((2, 3)), -kept.amin((2, 3)))
    if "frac_zero" in stats:
        out[..., _ZEROS] = (keep & (values == 0)).sum((2, 3)).float()
    return out


def combine_moments(parts: list[np.ndarray]) -> np.ndarray:  # [group, len(MOMENTS)]
    """Merge the moments of one document's windows (Chan et al. for the centred sums)."""
    total = parts[0].astype(np.float64)
    for part in parts[1:]:
        part = part.astype(np.float64)
        n_a, n_b = total[:, _COUNT].copy(), part[:, _COUNT]
        n = np.maximum(n_a + n_b, 1)
        delta = part[:, _TOTAL] / np.maximum(n_b, 1) - total[:, _TOTAL] / np.maximum(n_a, 1)
        total[:, _M2] += part[:, _M2] + delta**2 * n_a * n_b / n
        for field in (_COUNT, _TOTAL, _NORM, _POSITIONS, _ZEROS):
            total[:, field] += part[:, field]
        total[:, _ABSMAX] = np.maximum(total[:, _ABSMAX], part[:, _ABSMAX])
    return total


def finish_stats(moments: np.ndarray, stats: tuple[str, ...]) -> dict[str, list[float]]:
    """Statistic name -> one value per group, from combined moments [group, MOMENTS].

    mean, std (population, ddof 0), absmax and frac_zero are over every element the
    document's positions hold; norm is the mean over positions of the L2 norm.
    """
    count = np.maximum(moments[:, _COUNT], 1)
    values = {
        "mean": lambda: moments[:, _TOTAL] / count,
        "std": lambda: np.sqrt(np.maximum(moments[:, _M2] / count, 0)),
        "norm": lambda: moments[:, _NORM] / np.maximum(moments[:, _POSITIONS], 1),
        "absmax": lambda: moments[:, _ABSMAX],
        "frac_zero": lambda: moments[:, _ZEROS] / count,
    }
    return {stat: values[stat]().tolist() for stat in stats}
