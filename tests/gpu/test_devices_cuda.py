"""Several GPUs on one node: what each pool process's device choice does on real CUDA.

Marked `gpu`; skips where torch sees no CUDA device. tests/unit/test_devices.py checks
the assignment itself without a GPU.
"""

from __future__ import annotations

import pytest
import torch

from lensbatch.errors import DeviceError
from worker.engine.device import pick_device, pool_device

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_each_pool_process_gets_its_gpu_as_current_device() -> None:
    n = torch.cuda.device_count()
    for index in range(n):
        device = pick_device(pool_device("cuda", (), index, n))
        assert device.index == index and torch.cuda.current_device() == index
        assert torch.zeros(1, device=device).device.index == index


def test_a_gpu_the_node_lacks_is_one_clear_error() -> None:
    with pytest.raises(DeviceError, match="CUDA devices"):
        pick_device(f"cuda:{torch.cuda.device_count()}")
