"""The induction summary from a fused kernel's logsumexp, one token of a row at a time.

A query's induction keys are the positions right after the earlier occurrences of its
own token in its window: for a token at positions p_1 < ... < p_n of a row, query p_m
attends to keys p_1 + 1, ..., p_{m-1} + 1. Grouped by (row, token), the scores a group
needs are one small [n, n] matrix product, of which the strict lower triangle counts.
The cost is the sum of n^2 over the groups: neither the [T, T] of a full pattern nor a
[T, most repeats] gather of K per query, which on a long window of text (a word seen a
hundred times) moves hundreds of megabytes per layer.

The groups are found once per batch, on the CPU, from the padded tokens (so nothing
waits for an accelerator), padded to a power of two (at least MIN_SIZE), and the groups
of one size go through one batched product per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MIN_SIZE = 8  # smaller groups are padded to this many occurrences
# Elements of Q or K gathered at once ([group, size, head, d_head] per chunk of groups).
GATHER_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class GroupBucket:
    """Every (row, token) group of one padded size: flat indices row * n_pos + position."""

    queries: torch.Tensor  # [group, size] int64: the token's occurrences, ascending
    keys: torch.Tensor  # [group, size] int64: the position after each occurrence
    pairs: torch.Tensor  # [group, size, size] bool: (query slot m, key slot l), l < m < n


InductionGroups = tuple[GroupBucket, ...]


def _padded_size(n: int) -> int:
    return max(MIN_SIZE, 1 << (n - 1).bit_length())


def induction_groups(
    tokens: torch.Tensor,  # [batch, pos] int64, on the CPU
    mask: torch.Tensor,  # [batch, pos] 0/1: real tokens, on the CPU
    device: torch.device,
) -> InductionGroups:
    """The (row, token) groups of two or more occurrences among each row's real tokens."""
    n_pos = tokens.shape[1]
    by_size: dict[int, list[np.ndarray]] = {}
    for row, (ids, real) in enumerate(zip(tokens.numpy(), mask.numpy().astype(bool),
                                          strict=True)):
        where = np.flatnonzero(real)  # the row's real positions, ascending
        order = where[np.argsort(ids[where], kind="stable")]  # grouped by token
        grouped = ids[order]
        starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(order)], strict=True):
            if stop - start >= 2:
                by_size.setdefault(_padded_size(int(stop - start)), []).append(
                    row * n_pos + order[start:stop])
    return tuple(_bucket(size, groups, device) for size, groups in sorted(by_size.items()))


def _bucket(size: int, groups: list[np.ndarray], device: torch.device) -> GroupBucket:
    lengths = np.array([len(g) for g in groups])
    slots = np.arange(size)
    # Padding slots repeat the group's first occurrence: valid indices, never counted.
    queries = np.stack([np.pad(g, (0, size - len(g)), constant_values=g[0]) for g in groups])
    # The slot of the last occurrence is never a key (no query comes after it), and its
    # next position may lie past the row: it keeps its own index instead.
    keys = np.where(slots[None] < lengths[:, None] - 1, queries + 1, queries)
    pairs = (slots[None, None, :] < slots[None, :, None]) & (
        slots[None, :, None] < lengths[:, None, None])
    return GroupBucket(*(torch.from_numpy(np.ascontiguousarray(a)).to(device)
                         for a in (queries, keys, pairs)))


def induction_from_lse(
    q: torch.Tensor,  # [batch, head, query, d_head] float32
    k: torch.Tensor,  # [batch, head, key, d_head] float32, key == query
    mask: torch.Tensor | None,  # additive [batch, 1 or head, query, key] float32, or causal
    lse: torch.Tensor,  # [batch, head, query] float32
    scale: float,
    groups: InductionGroups,
) -> torch.Tensor:  # [batch, head, query]: attention to the induction keys, summed
    batch, n_heads, n_pos, d_head = q.shape
    flat_q = q.transpose(1, 2).reshape(batch * n_pos, n_heads, d_head)
    flat_k = k.transpose(1, 2).reshape(batch * n_pos, n_heads, d_head)
    flat_lse = lse.transpose(1, 2).reshape(batch * n_pos, n_heads)
    total = q.new_zeros(batch * n_pos, n_heads)
    for bucket in groups:
        size = bucket.queries.shape[1]
        step = max(1, GATHER_ELEMENTS // (size * n_heads * d_head))
        for start in range(0, bucket.queries.shape[0], step):
            queries, keys = bucket.queries[start:start + step], bucket.keys[start:start + step]
            # [group, head, m, l]: scale q_m . k_l, plus the mask there
            scores = torch.einsum("gmhd,glhd->ghml", flat_q[queries], flat_k[keys]) * scale
            if mask is not None:
                rows = queries[:, :1, None] // n_pos
                at = mask[rows, :, queries[:, :, None] % n_pos, keys[:, None, :] % n_pos]
                scores = scores + at.permute(0, 3, 1, 2)  # [group, 1 or head, m, l]
            attention = torch.exp(scores - flat_lse[queries].transpose(1, 2)[..., None])
            kept = torch.where(bucket.pairs[start:start + step, None], attention, 0.0)
            total.index_add_(0, queries.flatten(),
                             kept.sum(-1).transpose(1, 2).reshape(-1, n_heads))
    return total.view(batch, n_pos, n_heads).transpose(1, 2)
