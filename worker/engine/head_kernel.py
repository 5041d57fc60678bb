"""The per-query attention summaries in one read of the pattern: a Triton kernel for CUDA.

worker.engine.summaries computes the same numbers with ordinary tensor operations, which read
a [batch, head, query, key] pattern about four times (entropy alone writes and re-reads
a tensor of its size). This kernel reads each row of the pattern once, which keeps the
summaries a small fraction of a forward pass. It is used on CUDA when Triton is there;
tests/gpu checks it against the tensor version.
"""

from __future__ import annotations

from typing import Any

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only PyTorch builds come without Triton
    triton = None  # type: ignore[assignment]

BLOCK_K = 256  # keys read per step of a row
BLOCK_W = 16  # listed induction keys read per step


def usable(pattern: torch.Tensor) -> bool:
    return triton is not None and pattern.is_cuda and pattern.stride(-1) == 1


if triton is not None:

    @triton.jit
    def _per_query_kernel(
        pattern, keys, listed, first, out,
        n_heads, n_query, n_key, width,
        stride_b, stride_h, stride_q,
        BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr,
    ) -> None:
        row = tl.program_id(0)  # one (batch, head, query) row of the pattern
        q = row % n_query
        b = row // n_query // n_heads
        h = row // n_query % n_heads
        base = pattern + b.to(tl.int64) * stride_b + h.to(tl.int64) * stride_h \
            + q.to(tl.int64) * stride_q
        entropy = tl.zeros([BLOCK_K], dtype=tl.float32)
        for start in range(0, n_key, BLOCK_K):
            k = start + tl.arange(0, BLOCK_K)
            p = tl.load(base + k, mask=k < n_key, other=0.0).to(tl.float32)
            entropy += tl.where(p > 0.0, -p * tl.log(p), 0.0)
        prev = tl.load(base + q - 1, mask=q > 0, other=0.0).to(tl.float32)
        bos = tl.load(base + tl.load(first + b)).to(tl.float32)
        listing = (b.to(tl.int64) * n_query + q) * width
        induction = tl.zeros([BLOCK_W], dtype=tl.float32)
        for start in range(0, width, BLOCK_W):
            w = start + tl.arange(0, BLOCK_W)
            keep = tl.load(listed + listing + w, mask=w < width, other=0) != 0
            key = tl.load(keys + listing + w, mask=keep, other=0)
            induction += tl.load(base + key, mask=keep, other=0.0).to(tl.float32)
        result = out + row.to(tl.int64) * 4
        tl.store(result, prev)
        tl.store(result + 1, tl.sum(induction, axis=0))
        tl.store(result + 2, tl.sum(entropy, axis=0))
        tl.store(result + 3, bos)


def per_query(
    pattern: torch.Tensor,  # [batch, head, query, key], last dimension contiguous
    keys: torch.Tensor,  # [batch, query, width] int64
    listed: torch.Tensor,  # [batch, query, width] bool
    first: torch.Tensor,  # [batch] int64
) -> torch.Tensor:  # [batch, 4, head, query] float32: prev, induction, entropy, bos
    batch, n_heads, n_query, n_key = pattern.shape
    out = torch.empty(batch, n_heads, n_query, 4, device=pattern.device, dtype=torch.float32)
    launch: Any = _per_query_kernel[(batch * n_heads * n_query,)]
    launch(
        pattern, keys.contiguous(), listed.to(torch.uint8).contiguous(), first.contiguous(),
        out, n_heads, n_query, n_key, keys.shape[-1],
        pattern.stride(0), pattern.stride(1), pattern.stride(2),
        BLOCK_K=BLOCK_K, BLOCK_W=BLOCK_W,
    )
    return out.permute(0, 3, 1, 2)
