"""Attention through a fused kernel, and the per-head summaries from its logsumexp.

A fused scaled-dot-product kernel never builds the [batch, head, query, key] pattern,
but it returns (or can return) the logsumexp of each query's scaled, masked scores,
lse[b, h, q]. Every summary worker/engine/summaries.py reads off the pattern follows
from it and from Q and K:

- the attention from query q to one key j is exp(s(q, j) - lse), where s(q, j) =
  scale * q.k_j + mask(q, j): previous token (j = q - 1), BOS (j = the row's first
  position) and the induction keys (worker/engine/induction_groups.py: one small
  product per token of a row) come from (query, key) pairs, never a [T, T] tensor;
- the entropy -sum_j p_j log p_j = lse - sum_j p_j s(q, j) = lse - scale * q.(P K),
  where P K is a second kernel call with K as the values (masked keys have p_j = 0).

The summaries' arithmetic is float32 whatever the model's dtype: Q and K are upcast
for the second call, whose own logsumexp (float32) serves every summary.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from worker.engine.induction_groups import induction_from_lse
from worker.engine.summaries import Positions


def additive_mask(
    mask: torch.Tensor | None,  # [batch, 1 or head, query, key]: bool or additive
    n_key: int,
    dtype: torch.dtype,
) -> torch.Tensor | None:  # the same, additive, in `dtype`; None stays None (causal)
    """The mask as the kernels take it: additive, in the query's dtype, cut to the keys."""
    if mask is None:
        return None
    mask = mask[..., :n_key]
    if mask.dtype == torch.bool:
        low = torch.finfo(dtype).min
        return torch.where(mask, torch.zeros((), dtype=dtype, device=mask.device),
                           torch.full((), low, dtype=dtype, device=mask.device))
    return mask.to(dtype)


def causal_or(
    mask: torch.Tensor,  # Hugging Face's 4D mask as it came (bool or additive), for its identity
    additive: torch.Tensor,  # [batch, 1 or head, query, key]: additive_mask of it
) -> torch.Tensor | None:  # None: exactly the causal mask, which the kernels take as a flag
    """The additive mask, or None when it is the causal one (no padding in the batch and
    no sliding window in the layer): the kernels' causal path skips the masked blocks
    instead of adding a [query, key] bias, with the same result. Hugging Face builds one
    mask per forward pass and gives it to every layer, so the comparison is made once
    per mask (_last)."""
    if _last.mask is not None and _last.mask() is mask and _last.shape == additive.shape:
        return None if _last.causal else additive
    n_query, n_key = additive.shape[-2:]
    causal = n_query == n_key
    if causal:
        allowed = torch.ones(n_query, n_key, dtype=torch.bool, device=additive.device).tril()
        expected = torch.full((n_query, n_key), torch.finfo(additive.dtype).min,
                              dtype=additive.dtype, device=additive.device)
        causal = torch.equal(additive, expected.masked_fill_(allowed, 0).expand_as(additive))
    _last.mask, _last.shape, _last.causal = weakref.ref(mask), additive.shape, causal
    return None if causal else additive


@dataclass
class _LastMask:
    mask: weakref.ref[torch.Tensor] | None = None
    shape: torch.Size | None = None
    causal: bool = False


_last = _LastMask()


def attend(
    q: torch.Tensor,  # [batch, head, query, d_head]
    k: torch.Tensor,  # [batch, head, key, d_head] (key/value heads already repeated)
    v: torch.Tensor,  # [batch, head, key, d_head]
    mask: torch.Tensor | None,  # additive [batch, 1 or head, query, key], q's dtype
    scale: float,
) -> torch.Tensor:  # [batch, head, query, d_head]
    """The attention output, through whichever fused kernel torch picks."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                          scale=scale)


def attend_with_lse(
    q: torch.Tensor,  # [batch, head, query, d]
    k: torch.Tensor,  # [batch, head, key, d]
    v: torch.Tensor,  # [batch, head, key, d]
    mask: torch.Tensor | None,  # additive, q's dtype
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:  # [batch, head, query, d], lse [batch, head, query]
    """The output and the float32 logsumexp of the scaled masked scores."""
    if q.is_cuda:
        return _cuda_attend_with_lse(q, k, v, mask, scale)
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, mask is None, attn_mask=mask, scale=scale)
    return out, lse.float()


def _cuda_attend_with_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The memory-efficient kernel takes an additive bias and returns the logsumexp
    (padded along the queries); its bias wants the key dimension 16-aligned in memory."""
    n_query, n_key = q.shape[-2], k.shape[-2]
    bias = None
    if mask is not None:
        aligned = -(-n_key // 16) * 16
        bias = F.pad(mask, (0, aligned - n_key))[..., :n_key]
        bias = bias.expand(q.shape[0], q.shape[1], n_query, n_key)
    try:
        out, lse, _, _ = torch.ops.aten._scaled_dot_product_efficient_attention(
            q, k, v, bias, True, 0.0, mask is None, scale=scale)
    except RuntimeError:  # a shape or dtype the kernel refuses: the same, unfused
        return _math_attend_with_lse(q, k, v, mask, scale)
    return out, lse[..., :n_query].float()


def _math_attend_with_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale
    if mask is None:
        causal = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~causal, torch.finfo(torch.float32).min)
    else:
        scores = scores + mask.float()
    lse = torch.logsumexp(scores, -1)
    out = torch.exp(scores - lse[..., None]) @ v.float()
    return out.to(q.dtype), lse


def _pair_attention(
    dots: torch.Tensor,  # [batch, head, query, n]: q . k at n keys per query (float32)
    mask_at: torch.Tensor | None,  # [batch, 1 or head, query, n]: the mask there
    lse: torch.Tensor,  # [batch, head, query]
    scale: float,
) -> torch.Tensor:  # [batch, head, query, n]: the pattern's entries at those keys
    scores = dots * scale
    if mask_at is not None:
        scores = scores + mask_at.float()
    return torch.exp(scores - lse[..., None])


def per_query_from_lse(
    q: torch.Tensor,  # [batch, head, query, d_head] float32
    k: torch.Tensor,  # [batch, head, key, d_head] float32, key == query
    mask: torch.Tensor | None,  # additive [batch, 1 or head, query, key] float32, or causal
    scale: float,
    positions: Positions,
) -> torch.Tensor:  # [batch, 4, head, query] float32: prev, induction, entropy, bos
    """The four summaries of every query row (summaries.per_query_summaries' contract)."""
    first = positions.first  # [batch]
    batch, n_heads, n_query, d_head = q.shape
    pk, lse = attend_with_lse(q, k, k, mask, scale)  # P K [batch, head, query, d]
    entropy = lse - scale * (q * pk).sum(-1)
    prev_dots = (q[:, :, 1:] * k[:, :, :-1]).sum(-1, keepdim=True)  # [b, h, q - 1, 1]
    prev_mask = None if mask is None else mask.diagonal(-1, -2, -1)[..., None]
    prev = _pair_attention(prev_dots, prev_mask, lse[:, :, 1:], scale)[..., 0]
    prev = F.pad(prev, (1, 0))
    first_key = k[torch.arange(batch, device=k.device), :, first]  # [batch, head, d]
    bos_dots = torch.einsum("bhqd,bhd->bhq", q, first_key)[..., None]
    bos_mask = None if mask is None else mask.gather(
        -1, first[:, None, None, None].expand(-1, mask.shape[1], n_query, 1))
    bos = _pair_attention(bos_dots, bos_mask, lse, scale)[..., 0]
    induced = induction_from_lse(q, k, mask, lse, scale, positions.induction_groups)
    return torch.stack((prev, induced, entropy, bos), dim=1)
