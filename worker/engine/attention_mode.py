"""Which attention path a forward pass takes (LENSBATCH_ATTENTION, `attention_mode`), and
where the fused path's per-head summaries go (`summaries_to`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

import torch

from lensbatch.errors import SettingsError
from worker.engine.summaries import Positions

MODES = ("eager", "fused")
ENV = "LENSBATCH_ATTENTION"

_MODE: ContextVar[str | None] = ContextVar("lensbatch_attention_mode", default=None)


class SummarySink(Protocol):
    """Where a layer's summaries go: the reducer of worker/engine/reducer.py."""

    layers: tuple[int, ...]

    def current(self) -> Positions: ...

    def receive(self, layer: int, per_query: torch.Tensor) -> None: ...


_SINK: ContextVar[SummarySink | None] = ContextVar("lensbatch_summary_sink", default=None)


def current_mode() -> str:
    mode = _MODE.get() or os.environ.get(ENV) or "fused"
    if mode not in MODES:
        raise SettingsError(f"{ENV} must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


@contextmanager
def attention_mode(mode: str) -> Iterator[None]:
    """Every forward pass inside takes `mode`'s path ("eager": TransformerLens's own)."""
    if mode not in MODES:
        raise ValueError(f"attention mode must be one of {', '.join(MODES)}, not {mode!r}")
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


@contextmanager
def summaries_to(sink: SummarySink) -> Iterator[None]:
    """Inside, the fused layers among `sink.layers` hand it their summaries; each of
    those layers' hook_pattern holds the sink's own hook (run when a layer is eager)."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


def current_sink() -> SummarySink | None:
    """The reducer that `summaries_to` named, if any."""
    return _SINK.get()
