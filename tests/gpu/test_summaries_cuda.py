"""The per-head summaries on CUDA: the Triton kernel against the tensor version, and a
whole evaluation on the GPU against the CPU.

Marked `gpu`; every test skips where torch sees no CUDA device.
"""

from __future__ import annotations

import pytest
import torch

from worker.engine import head_kernel
from worker.engine.summaries import batch_positions, per_query_summaries

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def random_batch(seed: int, batch: int, n_pos: int, dtype: torch.dtype):  # type: ignore[no-untyped-def]
    """A causal pattern [batch, 3, n_pos, n_pos] (left-padded rows too) and its Positions."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 9, (batch, n_pos), generator=generator)  # many repeats
    lengths = torch.randint(1, n_pos + 1, (batch,), generator=generator)
    first = n_pos - lengths  # left padding
    index = torch.arange(n_pos)
    mask = (index[None] >= first[:, None]).long()
    scores = torch.randn(batch, 3, n_pos, n_pos, generator=generator) * 3
    visible = torch.ones(n_pos, n_pos, dtype=torch.bool).tril() & mask.bool()[:, None, None, :]
    pattern = torch.softmax(scores.masked_fill(~visible, float("-inf")), -1).nan_to_num(0.0)
    width = max(int(torch.bincount(row).max()) - 1 for row in tokens)
    positions = batch_positions(tokens.cuda(), mask.cuda(), first.cuda(),
                                torch.full((batch,), n_pos).cuda(), first.cuda(), width)
    return pattern.to("cuda", dtype), positions


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.bfloat16, 2e-3)])
@pytest.mark.parametrize("n_pos", [1, 7, 300, 1024])
def test_kernel_matches_tensor_version(dtype: torch.dtype, tolerance: float, n_pos: int) -> None:
    pattern, positions = random_batch(n_pos, 4, n_pos, dtype)
    assert head_kernel.usable(pattern)
    args = (positions.induction_keys, positions.induction_listed, positions.first)
    expected = per_query_summaries(pattern.float(), *args)
    found = head_kernel.per_query(pattern, *args)
    torch.testing.assert_close(found, expected, rtol=tolerance, atol=tolerance)


def test_kernel_reads_strided_patterns() -> None:
    pattern, positions = random_batch(3, 2, 64, torch.float32)
    strided = pattern.transpose(0, 1).contiguous().transpose(0, 1)  # batch and head swapped
    args = (positions.induction_keys, positions.induction_listed, positions.first)
    torch.testing.assert_close(head_kernel.per_query(strided, *args),
                               per_query_summaries(pattern, *args))


def test_gpu_evaluation_matches_cpu(tiny_checkpoint: str) -> None:
    from lensbatch.jobspec import JobSpec
    from worker.engine.evaluate import analyse_texts
    from worker.engine.models import load_model

    texts = ["The lamp is lit, the lamp is lit, all is well. " * 3, "Hello TransformerLens!"]
    spec = JobSpec(activations=("pattern", "resid_post"), stats=("mean", "std", "norm"))
    cpu = analyse_texts(load_model(tiny_checkpoint, "cpu", "float32"), texts, spec)
    gpu = analyse_texts(load_model(tiny_checkpoint, "cuda", "float32"), texts, spec)
    for a, b in zip(cpu, gpu, strict=True):
        assert a.metrics.nll_sum == pytest.approx(b.metrics.nll_sum, rel=1e-4)
        for field, layers in a.heads.items():
            for x, y in zip(sum(layers, []), sum(b.heads[field], []), strict=True):
                assert (x is None) == (y is None)
                if x is not None:
                    assert x == pytest.approx(y, rel=1e-4, abs=1e-5)
        for hook, per_stat in a.stats.items():
            for stat, values in per_stat.items():
                assert values == pytest.approx(b.stats[hook][stat], rel=1e-4, abs=1e-5)
