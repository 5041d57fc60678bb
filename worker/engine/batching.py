"""Sort by length and batch under a token budget (worker/evaluate.py restores the order)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

# Smallest share of real (not padding) tokens in a batch. Padding costs a full forward
# pass per position; on GPUs length-sorted batches of a real corpus stay large under
# this bound. On a CPU, where batching gains only the per-call overhead of short
# sequences, padding is nearly pure waste: with 8,192-token batches of 12 documents of
# 14 to 1,252 tokens, gpt2-small-random ran at 691 tokens/s at 0.75, 835 at 0.9 (810
# with 1,024-token batches).
MIN_FILL = 0.75
CPU_MIN_FILL = 0.9

# Tokens per forward pass when a job does not set --batch-tokens. A CPU is compute-bound
# from a single sequence up, and batches beyond the context length only add memory
# traffic ([batch, head, pos, pos] patterns, [batch, pos, d_vocab] logits): `make bench`
# measured gpt2-small-random at 254 tokens/s with 1,024 against 138 with 8,192 on a
# corpus of 14 to 2,489-token documents. Accelerators need large batches to stay busy.
CPU_BATCH_TOKENS = 1024
ACCELERATOR_BATCH_TOKENS = 8192


def batch_budget(requested: int | None, device: str | torch.device) -> int:
    """The job's --batch-tokens, or the default for the device it runs on."""
    if requested is not None:
        return requested
    return CPU_BATCH_TOKENS if torch.device(device).type == "cpu" else ACCELERATOR_BATCH_TOKENS


def batch_fill(device: str | torch.device) -> float:
    """The smallest share of real tokens in a batch on `device`."""
    return CPU_MIN_FILL if torch.device(device).type == "cpu" else MIN_FILL


def budget_batches(
    lengths: Sequence[int], budget: int, min_fill: float = MIN_FILL
) -> list[list[int]]:
    """Indices grouped so that batch size x longest length stays within `budget` and
    real tokens fill at least `min_fill` of the padded batch.

    Longest first, so the first batch shows the peak memory at once. A single item
    longer than the budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    real = 0  # real tokens in the last batch
    for index in order:
        if batches:
            size, longest = len(batches[-1]) + 1, lengths[batches[-1][0]]
            fits = size * longest <= budget
            filled = real + lengths[index] >= min_fill * size * longest
            if fits and filled:
                batches[-1].append(index)
                real += lengths[index]
                continue
        batches.append([index])
        real = lengths[index]
    return batches


def pad(
    sequences: Sequence[Sequence[int]], pad_id: int, side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokens [batch, pos], attention mask [batch, pos] and each sequence's offset [batch]
    (where its first real token sits: 0 for right padding)."""
    width = max(len(s) for s in sequences)
    tokens = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    offsets = torch.zeros(len(sequences), dtype=torch.long)
    for row, seq in enumerate(sequences):
        offset = width - len(seq) if side == "left" else 0
        tokens[row, offset:offset + len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, offset:offset + len(seq)] = 1
        offsets[row] = offset
    return tokens, mask, offsets
