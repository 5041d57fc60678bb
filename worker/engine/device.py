"""Device choice: auto picks cuda, then mps, then cpu; on a node with several GPUs each
pool process of a worker takes its own (pool_device)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lensbatch.errors import DeviceError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pool_device(requested: str, gpus: Sequence[int], index: int | None, n_cuda: int) -> str:
    """The device pool process `index` (0-based; None outside a pool: 0) of a worker
    started with `--device requested [--gpus gpus]` evaluates on, on a node with
    `n_cuda` CUDA devices.

    With `gpus`, process i takes cuda:gpus[i mod len(gpus)]; with `--device cuda` (or
    auto on a node with CUDA), process i takes cuda:(i mod n_cuda), so that N processes
    on N GPUs take one each and more processes share them round-robin. A device given
    with its number (cuda:1), cpu, mps, and auto without CUDA stay as requested.
    """
    slot = index or 0
    if gpus:
        return f"cuda:{gpus[slot % len(gpus)]}"
    if requested in ("cuda", "auto") and n_cuda > 0:
        return f"cuda:{slot % n_cuda}"
    return requested


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {requested} requested but CUDA is not available")
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {requested} requested but this node has "
                              f"{torch.cuda.device_count()} CUDA devices")
        torch.cuda.set_device(device)  # what allocates on "the current device" goes here too
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {requested} requested but MPS is not available")
    return device


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    dtype = DTYPES[name]
    if dtype != torch.float32 and device.type == "cpu":
        raise DeviceError(f"dtype {name} is for accelerators; use float32 on cpu")
    return dtype
