"""Device choice: auto picks cuda, then mps, then cpu."""

from __future__ import annotations

import torch

from lensbatch.errors import DeviceError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {requested} requested but MPS is not available")
    return device


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    dtype = DTYPES[name]
    if dtype != torch.float32 and device.type == "cpu":
        raise DeviceError(f"dtype {name} is for accelerators; use float32 on cpu")
    return dtype
