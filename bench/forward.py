"""Rows a-c: the bare forward pass, the worker's evaluation path and the naive loop,
in this process, on the same documents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformer_lens.model_bridge import TransformerBridge

from bench.timing import side_by_side
from lensbatch.jobspec import JobSpec
from worker.engine.batching import batch_budget, budget_batches, pad
from worker.engine.evaluate import evaluate_tokens
from worker.engine.windows import Window, document_windows


@dataclass(frozen=True)
class Batches:
    """The padded batches evaluate_tokens makes, built once, outside any timing."""

    tokens: list[torch.Tensor]  # each [batch, pos]
    masks: list[torch.Tensor]  # each [batch, pos]
    windows: list[Window]


def make_batches(model: TransformerBridge, docs: list[list[int]], spec: JobSpec) -> Batches:
    n_ctx = int(model.cfg.n_ctx)
    windows = [w for i, toks in enumerate(docs)
               for w in document_windows(i, toks, n_ctx, spec.windows, spec.stride)]
    pad_id = model.tokenizer.pad_token_id or 0
    tokens, masks = [], []
    budget = batch_budget(spec.batch_tokens, model.cfg.device or "cpu")
    for batch in budget_batches([w.length for w in windows], budget):
        padded, mask, _ = pad([windows[i].tokens for i in batch], pad_id, spec.padding_side)
        tokens.append(padded.to(model.cfg.device))
        masks.append(mask.to(model.cfg.device))
    return Batches(tokens, masks, windows)


def bare_forward(model: TransformerBridge, batches: Batches) -> None:
    """(a) The physical limit: the model's own loss, nothing kept."""
    with torch.inference_mode():
        for tokens, mask in zip(batches.tokens, batches.masks, strict=True):
            loss = model(tokens, attention_mask=mask, return_type="loss")
        float(loss)  # waits for an accelerator to finish


def naive_loop(model: TransformerBridge, batches: Batches) -> None:
    """(c) The seed notebook's way: one window at a time, a full activation cache,
    loss and accuracy from the logits."""
    for window in batches.windows:
        tokens = torch.tensor([window.tokens], device=model.cfg.device)
        logits, cache = model.run_with_cache(tokens)
        loss = model.loss_fn(logits, tokens)
        accuracy = (logits[0, :-1].argmax(-1) == tokens[0, 1:]).float().mean()
        loss.item(), accuracy.item()
        del cache


@dataclass(frozen=True)
class ForwardRows:
    seconds: dict[str, list[float]]
    n_tokens: int  # document tokens, the numerator of every tokens/s


def run_forward_rows(
    model: TransformerBridge,
    docs: list[list[int]],
    specs: dict[str, JobSpec],
    extra: dict[str, Callable[[], object]],
    reps: int,
) -> ForwardRows:
    """`specs` names evaluation variants (b); `extra` adds runs timed alongside, such as (d)."""
    batches = make_batches(model, docs, next(iter(specs.values())))
    runs: dict[str, Callable[[], object]] = {"bare_forward": lambda: bare_forward(model, batches)}
    for name, spec in specs.items():
        runs[name] = lambda spec=spec: evaluate_tokens(model, docs, spec)  # type: ignore[misc]
    runs["naive_loop"] = lambda: naive_loop(model, batches)
    runs.update(extra)
    # Warm-up on the shortest document: first-call allocations and lazy initialisation.
    short = min(docs, key=len)
    evaluate_tokens(model, [short], next(iter(specs.values())))
    naive_loop(model, make_batches(model, [short], next(iter(specs.values()))))
    return ForwardRows(side_by_side(runs, reps), sum(len(d) for d in docs))
