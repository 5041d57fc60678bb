"""Adaptive batching: when a batch does not fit in accelerator memory, halve and retry.

The token budget is a guess made before seeing the device; an out-of-memory error on
one batch (a long window, a fragmented allocator, a neighbour on the same GPU) should
cost a retry in smaller pieces, not the task.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import TypeVar

import torch

Item = TypeVar("Item")
Out = TypeVar("Out")

log = logging.getLogger("lensbatch.worker")


def release_cached_memory() -> None:
    """Drop what the failed attempt left behind, so the halves can use it."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def halve_on_oom(
    run_batch: Callable[[list[Item]], list[Out]],
) -> Callable[[list[Item]], list[Out]]:
    """`run_batch`, except that a batch raising torch.OutOfMemoryError is split in two
    halves, each retried the same way; outputs keep the batch's order. A single item
    that does not fit re-raises: nothing smaller can be tried."""

    def run(batch: list[Item]) -> list[Out]:
        try:
            return run_batch(batch)
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                raise
        # Outside the except block: the traceback no longer pins the failed tensors.
        release_cached_memory()
        half = len(batch) // 2
        log.warning("out of memory on a batch of %d; retrying as %d + %d",
                    len(batch), half, len(batch) - half)
        return run(batch[:half]) + run(batch[half:])

    return run
