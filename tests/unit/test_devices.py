"""Nodes with several GPUs: each pool process of a worker takes its own device.

The assignment is a pure function of the request, the pool process's index and the
node's device count, so it is checked here without a GPU; tests/gpu runs real workers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import lensbatch, user_error_line
from worker.engine.device import pool_device


def test_one_gpu_per_pool_process() -> None:
    assert [pool_device("cuda", (), i, 4) for i in range(4)] == [
        "cuda:0", "cuda:1", "cuda:2", "cuda:3"]


def test_more_processes_than_gpus_share_them_round_robin() -> None:
    assert [pool_device("cuda", (), i, 2) for i in range(5)] == [
        "cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]


def test_gpus_list_picks_devices_by_number() -> None:
    assert [pool_device("cuda", (2, 5), i, 8) for i in range(3)] == [
        "cuda:2", "cuda:5", "cuda:2"]
    assert pool_device("auto", (7,), 0, 8) == "cuda:7"


def test_auto_uses_the_gpus_when_the_node_has_them() -> None:
    assert [pool_device("auto", (), i, 3) for i in range(3)] == ["cuda:0", "cuda:1", "cuda:2"]
    assert pool_device("auto", (), 1, 0) == "auto"  # no CUDA: mps or cpu, as before


@pytest.mark.parametrize("requested", ["cpu", "mps", "cuda:1"])
def test_a_pinned_device_stays(requested: str) -> None:
    assert [pool_device(requested, (), i, 4) for i in range(3)] == [requested] * 3


def test_outside_a_pool_is_process_zero() -> None:
    assert pool_device("cuda", (), None, 4) == "cuda:0"


@pytest.mark.parametrize("args,fragment", [
    (["--gpus", "0,x"], "--gpus takes CUDA device numbers"),
    (["--gpus", ","], "--gpus takes CUDA device numbers"),
    (["--gpus", "0,1", "--device", "cpu"], "--gpus needs --device cuda"),
])
def test_bad_gpus_is_one_line(args: list[str], fragment: str, tmp_path: Path) -> None:
    result = lensbatch("worker", *args, env={
        "LENSBATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "LENSBATCH_BROKER_URL": "redis://127.0.0.1:1/0"})
    user_error_line(result, fragment)
