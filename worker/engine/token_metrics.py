"""Per-position metrics as small pure functions on shape-annotated tensors.

Position i predicts token i+1, so a sequence of p tokens has p-1 predictions. These
functions never look at padding: callers pick the positions that count.
"""

from __future__ import annotations

import numpy as np
import torch

# Logits elements per step of next_token_nll (512 MiB in float32): the float32 log-probs
# of a whole batch would be as large as its logits again.
NLL_CHUNK_ELEMENTS = 1 << 27


def next_token_nll(
    logits: torch.Tensor,  # [batch, pos, d_vocab]
    tokens: torch.Tensor,  # [batch, pos]
) -> torch.Tensor:  # [batch, pos - 1], float32
    """Cross-entropy of each next token, in nats (what lm_cross_entropy_loss averages)."""
    targets = tokens[:, 1:].unsqueeze(-1)  # [batch, pos - 1, 1]
    rows = max(1, NLL_CHUNK_ELEMENTS // max(logits.shape[1] * logits.shape[2], 1))
    parts = []
    for start in range(0, max(logits.shape[0], 1), rows):
        # log_softmax in float32 whatever the logits' dtype, on whole rows (contiguous:
        # slicing positions first would copy the logits).
        log_probs = torch.log_softmax(logits[start:start + rows], dim=-1, dtype=torch.float32)
        parts.append(-log_probs[:, :-1].gather(-1, targets[start:start + rows]).squeeze(-1))
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def next_token_correct(
    logits: torch.Tensor,  # [batch, pos, d_vocab]
    tokens: torch.Tensor,  # [batch, pos]
) -> torch.Tensor:  # [batch, pos - 1], bool
    """Whether the argmax prediction at each position equals the next token."""
    return logits[:, :-1].argmax(dim=-1) == tokens[:, 1:]


def target_scores(
    logits: torch.Tensor,  # [n, d_vocab]; overwritten when float32
    targets: torch.Tensor,  # [n] int64
) -> tuple[torch.Tensor, torch.Tensor]:  # nll [n] float32, correct [n] bool
    """Cross-entropy of each row's target in nats (next_token_nll for rows already paired
    with the token they predict), and whether the row's argmax is its target.

    One max over the vocabulary serves both: it is log-sum-exp's shift and gives the
    argmax's hit (on a CPU through _first_maximum_is; elsewhere max's index, the first
    maximal one, as argmax's). The rest is done in place on the float32 logits, so a
    chunk needs no second [n, d_vocab] tensor: the caller's float32 logits are consumed."""
    logits = logits.float()  # [n, d_vocab]; the same tensor when already float32
    target = logits.gather(-1, targets[:, None]).squeeze(-1)  # [n]
    if logits.device.type == "cpu":
        top = logits.amax(dim=-1)  # [n]
        correct = _first_maximum_is(logits, top, target, targets)
    else:
        best = logits.max(dim=-1)  # values, indices: [n] each
        top, correct = best.values, best.indices == targets
    log_sum = logits.sub_(top[:, None]).exp_().sum(dim=-1).log_()  # [n]
    return log_sum + top - target, correct


def _first_maximum_is(
    logits: torch.Tensor,  # [n, d_vocab] float32, on the CPU
    top: torch.Tensor,  # [n]: each row's maximum
    target: torch.Tensor,  # [n]: each row's logit of its target
    targets: torch.Tensor,  # [n] int64
) -> torch.Tensor:  # [n] bool: argmax (the first maximal index) == target
    """argmax's hit without argmax: on a CPU a max with its index costs 3.7x a plain
    max over GPT-2's vocabulary (18.6 ms against 5.0 ms for 667 rows). A row hits when
    its target holds the maximum and no earlier entry does; only the rows whose target
    holds it are looked at again, up to the target."""
    hit = target == top
    rows = hit.nonzero().flatten().tolist()
    if rows:
        wanted = targets.tolist()
        for row in rows:
            if bool((logits[row, :wanted[row]] == top[row]).any()):
                hit[row] = False
    return hit


def earlier_bigrams(
    tokens: np.ndarray,  # [pos] int64
) -> np.ndarray:  # [pos - 1] int64
    """earlier_bigram_position on the CPU, in numpy: for each position i, the first
    j < i with the same bigram (tok[j], tok[j+1]) == (tok[i], tok[i+1]), or -1."""
    n = tokens.shape[0] - 1
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    codes = tokens[:-1].astype(np.int64) * (int(tokens.max()) + 1) + tokens[1:]  # [pos - 1]
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    first_at = first[inverse.reshape(-1)]  # [pos - 1]: first occurrence of each bigram
    return np.where(first_at < np.arange(n), first_at, -1).astype(np.int64)


def earlier_bigram_position(
    tokens: torch.Tensor,  # [pos], int64
) -> torch.Tensor:  # [pos - 1], int64
    """For each position i, the first j < i with (tok[j], tok[j+1]) == (tok[i], tok[i+1]),
    or -1 when the bigram at i is new. Positions with j >= 0 are induction candidates.

    The reference definition, for one sequence; the worker computes the same for whole
    batches inside worker/summaries.py, and tests check the two agree."""
    n = tokens.shape[0] - 1
    if n <= 0:
        return torch.empty(0, dtype=torch.long)
    width = int(tokens.max().item()) + 1
    codes = tokens[:-1] * width + tokens[1:]  # [pos - 1], one int per bigram
    _, inverse = torch.unique(codes, return_inverse=True)
    positions = torch.arange(n)
    first = torch.full((int(inverse.max().item()) + 1,), n, dtype=torch.long)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")  # [n_unique]
    first_at = first[inverse]  # [pos - 1]
    return torch.where(first_at < positions, first_at, torch.full_like(first_at, -1))
