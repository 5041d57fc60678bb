"""Forward hooks that reduce activations while the forward pass that gives the loss runs.

One BatchReducer serves every batch of a task: `start` gives it the batch's Positions,
the model's forward pass calls its hooks (each reduces its activation to per-row sums
and returns None, so nothing of the activation outlives the hook), and `finish`
hands back the sums. No second pass, no activation cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch

from lensbatch.hooks import hook_kind
from worker.engine.summaries import Positions, activation_moments, head_sums
from worker.engine.top_activations import TopAccumulator

Hook = tuple[str, Callable[..., None]]


class BatchReducer:
    """`layers`: the layers whose attention patterns are summarised per head (every layer
    of a transformer, none of a state-space model, the attention layers of a hybrid, none
    for a behaviour-only job)."""

    def __init__(self, layers: Sequence[int], activations: Sequence[str],
                 stats: tuple[str, ...], top: TopAccumulator | None = None) -> None:
        self.layers = tuple(layers)
        self.activations = tuple(activations)
        self.stats = stats
        self.top = top  # the top activations of its hooks, when the job keeps them
        self._positions: Positions | None = None
        self._heads: dict[int, torch.Tensor] = {}  # layer -> [batch, 4, head]
        self._moments: dict[str, torch.Tensor] = {}  # hook -> [batch, group, MOMENTS]

    def fwd_hooks(self) -> list[Hook]:
        hooks: list[Hook] = [(f"blocks.{layer}.attn.hook_pattern", partial(self._pattern, layer))
                             for layer in self.layers]
        hooks += [(name, partial(self._activation, name, hook_kind(name)))
                  for name in self.activations]
        if self.top is not None:
            hooks += [(name, partial(self._top, name)) for name in self.top.hooks]
        return hooks

    def start(self, positions: Positions) -> None:
        self._positions = positions
        self._heads.clear()
        self._moments.clear()

    def _current(self) -> Positions:
        if self._positions is None:
            raise RuntimeError("BatchReducer hook called outside start() and finish()")
        return self._positions

    def _pattern(self, layer: int, pattern: torch.Tensor, hook: Any) -> None:
        self._heads[layer] = head_sums(pattern, self._current())

    def _activation(self, name: str, kind: str, activation: torch.Tensor, hook: Any) -> None:
        self._moments[name] = activation_moments(activation, kind, self._current(), self.stats)

    def _top(self, name: str, activation: torch.Tensor, hook: Any) -> None:
        if self.top is not None:
            self.top.reduce(name, activation)

    def finish(self, batch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """[batch, len(layers), 4, head] head sums (in `layers` order; no layers, no
        heads) and hook -> [batch, group, MOMENTS], on the device (nothing here waits
        for it)."""
        missing = [layer for layer in self.layers if layer not in self._heads]
        missing_hooks = [name for name in self.activations if name not in self._moments]
        if missing or missing_hooks:
            raise RuntimeError(f"hooks did not fire: layers {missing}, {missing_hooks}")
        heads = (torch.stack([self._heads[layer] for layer in self.layers], dim=1)
                 if self.layers else torch.zeros(batch, 0, 4, 0))
        moments = dict(self._moments)
        if self.top is not None:
            self.top.commit()
        self._positions = None
        self._heads.clear()
        self._moments.clear()
        return heads, moments
