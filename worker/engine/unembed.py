"""Loss and accuracy read from the final residual stream, a chunk of positions at a time.

The full [batch, pos, d_vocab] logits never exist. The Hugging Face model is asked for
the logits of its last position only (`logits_to_keep=1`), a hook keeps the final
residual stream (ln_final's output: what the unembedding reads), and only the positions
that are scored go through the unembedding, in chunks of at most CHUNK_ELEMENTS logits,
each reduced to its losses and argmaxes before the next. Padding, and the context-only
positions of overlapping windows, are never unembedded.

Models whose logits are not a plain linear map of that residual (a soft cap, a scale)
are found by a check on a few tokens and keep the full logits of the forward pass; the
same chunked reduction then reads them.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from worker.engine.token_metrics import target_scores

FINAL_HOOK = "ln_final.hook_out"
# Logits per chunk (128 MiB in float32, scored in place): 667 positions of GPT-2's
# vocabulary. Larger chunks make faster matrix products on a CPU (per 1,023 positions:
# 0.95 s in chunks of 333, 0.84 in chunks of 667, 0.78 in chunks of 1,335).
CHUNK_ELEMENTS = 1 << 25


@dataclass
class FinalResidual:
    """A forward hook that keeps the final residual stream of the last pass."""

    value: torch.Tensor | None = field(default=None)

    def hook(self, residual: torch.Tensor, hook: Any) -> None:
        self.value = residual  # [batch, pos, d_model]

    def take(self) -> torch.Tensor:
        if self.value is None:
            raise RuntimeError(f"{FINAL_HOOK} did not fire")
        value, self.value = self.value, None
        return value


def _linear_unembed(model: TransformerBridge) -> torch.nn.Linear | None:
    """The unembedding's own module, when the forward can skip it and it is a plain
    linear map behind the final hook."""
    component = getattr(getattr(model, "unembed", None), "original_component", None)
    hf_model = getattr(model, "original_model", None)
    if not isinstance(component, torch.nn.Linear) or hf_model is None:
        return None
    if FINAL_HOOK not in model.hook_dict:
        return None
    if "logits_to_keep" not in inspect.signature(hf_model.forward).parameters:
        return None
    return component


@functools.lru_cache(maxsize=4)
def unembedding(model: TransformerBridge) -> torch.nn.Linear | None:
    """The model's logits as a function of its final residual stream, checked against
    its own forward pass on a few tokens; None when they differ or cannot be had."""
    linear = _linear_unembed(model)
    if linear is None:
        return None
    tokens = torch.arange(1, 9, device=linear.weight.device)[None]  # [1, 8]
    final = FinalResidual()
    with torch.inference_mode(), model.hooks(fwd_hooks=[(FINAL_HOOK, final.hook)]):
        logits = model(tokens, return_type="logits")  # [1, 8, d_vocab]
        mine = linear(final.take())
    scale = float(logits.abs().max()) + 1e-6
    tolerance = 1e-5 if logits.dtype == torch.float32 else 1e-2
    if mine.shape != logits.shape or float((mine - logits).abs().max()) > tolerance * scale:
        return None
    return linear


def forward_for_scores(
    model: TransformerBridge,
    tokens: torch.Tensor,  # [batch, pos]
    mask: torch.Tensor,  # [batch, pos]
    unembed: torch.nn.Linear | None,
) -> torch.Tensor:  # [batch, pos, d_model] final residual, or [batch, pos, d_vocab] logits
    """One forward pass, under the caller's hooks: the final residual stream when the
    model has an `unembedding`, else the logits."""
    if unembed is None:
        logits: torch.Tensor = model(tokens, attention_mask=mask, return_type="logits")
        return logits
    final = FinalResidual()
    with model.hooks(fwd_hooks=[(FINAL_HOOK, final.hook)]):
        model(tokens, attention_mask=mask, return_type=None, logits_to_keep=1)
    return final.take()


def score_positions(
    source: torch.Tensor,  # [batch, pos, d]: final residual (d_model) or logits (d_vocab)
    rows: torch.Tensor,  # [n] int64: batch row of each scored position
    cols: torch.Tensor,  # [n] int64: its position in the row
    targets: torch.Tensor,  # [n] int64: the token it predicts
    unembed: torch.nn.Linear | None,  # [d_model] -> [d_vocab]; None: `source` is logits
) -> tuple[torch.Tensor, torch.Tensor]:  # nll [n] float32, correct [n] bool
    """The loss and argmax hit of each scored position, CHUNK_ELEMENTS logits at a time."""
    n = rows.shape[0]
    d_vocab = source.shape[-1] if unembed is None else unembed.out_features
    step = max(1, CHUNK_ELEMENTS // max(d_vocab, 1))
    nll = torch.empty(n, dtype=torch.float32, device=source.device)
    correct = torch.empty(n, dtype=torch.bool, device=source.device)
    for start in range(0, n, step):
        part = slice(start, start + step)
        picked = source[rows[part], cols[part]]  # [chunk, d]
        logits = picked if unembed is None else unembed(picked)  # [chunk, d_vocab]
        nll[part], correct[part] = target_scores(logits, targets[part])  # logits consumed
    return nll, correct

