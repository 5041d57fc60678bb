"""Head ablation: a head's output, at blocks.L.attn.hook_z ([batch, pos, head, d_head]),
replaced by zeros or by a fixed mean, while the forward passes that give every number
run.

`ablating(model, ablation)` keeps the replacing hooks on for a block of code; the
reducer's and the unembedding's hooks, put on inside it, run on the ablated model. A
mean ablation's values are each head's mean output over every position of a reference
set of documents, each run alone and unablated (no padding, the same every time: the
job's first lensbatch.ablation.REFERENCE_DOCUMENTS documents, cut to the context).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from transformer_lens.model_bridge import TransformerBridge

from lensbatch.errors import JobSpecError
from lensbatch.jobspec import Head, JobSpec


def z_hook(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


@dataclass(frozen=True)
class HeadAblation:
    """What replaces each ablated head's output: zeros (`means` None), or its
    [d_head] mean."""

    heads: tuple[Head, ...]
    means: dict[Head, torch.Tensor] | None = None

    def _replace(self, layer: int, z: torch.Tensor, hook: Any) -> torch.Tensor:
        out = z.clone()  # [batch, pos, head, d_head]
        for ablated_layer, head in self.heads:
            if ablated_layer != layer:
                continue
            if self.means is None:
                out[:, :, head] = 0
            else:
                out[:, :, head] = self.means[(layer, head)].to(out.dtype)  # [d_head]
        return out

    def hooks(self) -> list[tuple[str, Any]]:
        layers = sorted({layer for layer, _ in self.heads})
        return [(z_hook(layer), partial(self._replace, layer)) for layer in layers]


def check_heads(model: TransformerBridge, spec: JobSpec) -> None:
    """JobSpecError for an ablated head the loaded model lacks (a layer out of range, a
    head past n_heads, a layer without attention)."""
    spec.check_heads(int(model.cfg.n_layers), int(model.cfg.n_heads))
    for layer, head in spec.ablate:
        if z_hook(layer) not in model.hook_dict:
            raise JobSpecError(f"--ablate {layer}.{head}: layer {layer} of {spec.model} has "
                               f"no attention output ({z_hook(layer)})")


def reference_means(model: TransformerBridge, references: Sequence[list[int]],
                    heads: tuple[Head, ...]) -> dict[Head, torch.Tensor]:
    """Each head's output averaged over every position of `references` (token lists,
    each run alone, cut to the context): head -> [d_head], float32 on the model's device."""
    if not references:
        raise JobSpecError("--ablation mean needs documents to take the mean over")
    n_ctx = int(model.cfg.n_ctx)
    device = torch.device(model.cfg.device or "cpu")
    sums: dict[Head, torch.Tensor] = {}
    count = 0

    def add(layer: int, z: torch.Tensor, hook: Any) -> None:  # z: [1, pos, head, d_head]
        for ablated_layer, head in heads:
            if ablated_layer == layer:
                part = z[0, :, head].double().sum(0)  # [d_head]
                sums[(layer, head)] = sums[(layer, head)] + part if (layer, head) in sums \
                    else part

    hooks = [(z_hook(layer), partial(add, layer)) for layer in sorted({h[0] for h in heads})]
    with torch.inference_mode(), model.hooks(fwd_hooks=hooks):
        for tokens in references:
            kept = tokens[:n_ctx]
            model(torch.tensor([kept], device=device), return_type=None)
            count += len(kept)
    return {head: (total / count).float() for head, total in sums.items()}


@contextmanager
def ablating(model: TransformerBridge, ablation: HeadAblation | None) -> Iterator[None]:
    """The ablation's hooks on for the block (nothing for None)."""
    if ablation is None or not ablation.heads:
        yield
        return
    with model.hooks(fwd_hooks=ablation.hooks()):
        yield
