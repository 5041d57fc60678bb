"""The fused attention path on CUDA: the kernel's logsumexp summaries against the pattern's,
and bfloat16 models' fused summaries (float32 arithmetic) against float32.

Marked `gpu`; every test skips where torch sees no CUDA device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import torch

from lensbatch.jobspec import JobSpec
from tests.matrix import TEXTS
from tests.unit.test_fused_summaries import counted, random_batch
from worker.engine.attention_mode import attention_mode
from worker.engine.evaluate import analyse_tokens, tokenize
from worker.engine.fused_summaries import additive_mask, attend_with_lse, per_query_from_lse
from worker.engine.induction_groups import GroupBucket
from worker.engine.models import load_model
from worker.engine.summaries import per_query_summaries

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("n_pos", [1, 7, 130, 1000])
def test_cuda_summaries_from_lse_match_the_pattern(side: str, n_pos: int) -> None:
    mask, positions = random_batch(n_pos, n_pos, side)
    q, k = torch.randn(2, 3, 4, n_pos, 64, generator=torch.Generator().manual_seed(n_pos))
    scale = 64 ** -0.5
    pattern = torch.softmax(q.double() @ k.double().transpose(-1, -2) * scale + mask, -1)
    args = (positions.induction_keys, positions.induction_listed, positions.first)
    expected = counted(per_query_summaries(pattern, *args).float(), positions)
    groups = tuple(GroupBucket(b.queries.cuda(), b.keys.cuda(), b.pairs.cuda())
                   for b in positions.induction_groups)
    on_gpu = replace(positions, first=positions.first.cuda(), induction_groups=groups)
    found = per_query_from_lse(q.cuda(), k.cuda(), mask.cuda(), scale, on_gpu)
    torch.testing.assert_close(counted(found.cpu(), positions), expected, rtol=1e-5, atol=2e-5)


def test_cuda_lse_is_the_logsumexp() -> None:
    mask, _ = random_batch(3, 100, "left")
    q, k, v = (torch.randn(3, 4, 100, 64, device="cuda", dtype=torch.bfloat16)
               for _ in range(3))
    additive = additive_mask(mask.cuda(), 100, torch.bfloat16)
    _, lse = attend_with_lse(q, k, v, additive, 0.125)
    scores = (q.float() @ k.float().transpose(-1, -2)) * 0.125 + mask.cuda()
    assert lse.dtype == torch.float32
    torch.testing.assert_close(lse, torch.logsumexp(scores, -1), rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen2"])
def test_bfloat16_fused_summaries_close_to_float32(
        name: str, matrix_checkpoint: Callable[[str], str]) -> None:
    """bfloat16's fused summaries are within bfloat16's precision of float32's, and of
    the bfloat16 eager path's; float32 fused equals float32 eager on the GPU too."""
    path = matrix_checkpoint(name)
    full = load_model(path, "cuda", "float32")
    half = load_model(path, "cuda", "bfloat16")
    docs = tokenize(full, TEXTS, None)
    results = {}
    for mode in ("eager", "fused"):
        with attention_mode(mode):
            results["float32", mode] = analyse_tokens(full, docs, JobSpec())
            results["bfloat16", mode] = analyse_tokens(half, docs, JobSpec(dtype="bfloat16"))
    checks = ((("float32", "fused"), ("float32", "eager"), 1e-5),
              (("bfloat16", "fused"), ("bfloat16", "eager"), 2e-2),
              (("bfloat16", "fused"), ("float32", "fused"), 5e-2))
    for found_key, expected_key, tolerance in checks:
        for a, b in zip(results[found_key], results[expected_key], strict=True):
            assert a.metrics.loss == pytest.approx(b.metrics.loss, rel=max(tolerance, 1e-5))
            for summary, layers in a.heads.items():
                for x, y in zip(sum(layers, []), sum(b.heads[summary], []), strict=True):
                    assert (x is None) == (y is None)
                    if x is not None:
                        assert x == pytest.approx(y, rel=tolerance, abs=tolerance), (
                            found_key, expected_key, summary)
