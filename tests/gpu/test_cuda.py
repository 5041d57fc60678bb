"""The CUDA path: device placement, bfloat16 and out-of-memory halving on a real GPU.

Marked `gpu`; every test skips cleanly where torch sees no CUDA device.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge

from lensbatch.jobspec import JobSpec
from worker.engine.evaluate import WindowScores, evaluate_tokens, score_windows, tokenize
from worker.engine.models import load_model
from worker.engine.reducer import BatchReducer
from worker.engine.windows import Window

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

TEXTS = [
    "The lighthouse keeper wrote in the log: the lamp is lit, the lamp is lit.",
    "Induction heads copy what followed a token the last time it appeared. " * 6,
    "Attention heads move information between positions of the residual stream.",
    "A short one.",
]


@pytest.fixture(scope="module")
def cpu_model(tiny_checkpoint: str) -> TransformerBridge:
    return load_model(tiny_checkpoint, "cpu", "float32")


@pytest.fixture(scope="module")
def cuda_model(tiny_checkpoint: str) -> TransformerBridge:
    return load_model(tiny_checkpoint, "cuda", "float32")


def test_model_and_batches_run_on_the_gpu(cpu_model: TransformerBridge,
                                          cuda_model: TransformerBridge) -> None:
    assert all(p.device.type == "cuda" for p in cuda_model.parameters())
    spec = JobSpec(batch_tokens=4096)
    docs = tokenize(cpu_model, TEXTS, True)
    on_cpu = evaluate_tokens(cpu_model, docs, spec)
    on_gpu = evaluate_tokens(cuda_model, docs, spec)
    for a, b in zip(on_gpu, on_cpu, strict=True):
        assert a.n_predictions == b.n_predictions and a.n_windows == b.n_windows
        assert a.loss == pytest.approx(b.loss, rel=1e-4)
        # argmax can flip on near-ties between devices; almost all positions agree
        assert abs(a.n_correct - b.n_correct) <= 1


def test_bfloat16_metrics_close_to_float32(tiny_checkpoint: str,
                                           cuda_model: TransformerBridge) -> None:
    bf16 = load_model(tiny_checkpoint, "cuda", "bfloat16")
    assert next(bf16.parameters()).dtype == torch.bfloat16
    docs = tokenize(cuda_model, TEXTS, True)
    full = evaluate_tokens(cuda_model, docs, JobSpec())
    half = evaluate_tokens(bf16, docs, JobSpec(dtype="bfloat16"))
    for a, b in zip(half, full, strict=True):
        assert a.n_predictions == b.n_predictions
        assert a.loss == pytest.approx(b.loss, rel=0.02)  # bf16 keeps ~3 digits


class AllocatesPerWindow:
    """score_windows after a real CUDA allocation of `per_window` bytes per window:
    batches above free memory fail in the allocator, as a too-large batch would."""

    def __init__(self, per_window: int) -> None:
        self.per_window = per_window
        self.sizes: list[int] = []

    def __call__(self, model: TransformerBridge, windows: list[Window],
                 padding_side: str, reducer: BatchReducer) -> list[WindowScores]:
        self.sizes.append(len(windows))
        block = torch.empty(len(windows) * self.per_window, dtype=torch.uint8, device="cuda")
        del block
        return score_windows(model, windows, padding_side, reducer)


def test_out_of_memory_on_cuda_halves_the_batch(cuda_model: TransformerBridge) -> None:
    texts = [f"Document {i}: the lamp is lit and the harbour is quiet." for i in range(8)]
    docs = tokenize(cuda_model, texts, True)
    spec = JobSpec(batch_tokens=100_000)
    expected = evaluate_tokens(cuda_model, docs, spec)
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info()
    scorer = AllocatesPerWindow(int(free * 0.3))  # 3 windows fit, 4 do not
    got = evaluate_tokens(cuda_model, docs, spec, scorer=scorer)
    assert scorer.sizes[0] == 8 and max(scorer.sizes[1:]) <= 4
    assert [m.n_predictions for m in got] == [m.n_predictions for m in expected]
    for a, b in zip(got, expected, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=1e-5)


def test_lensbatch_run_on_cuda_in_bfloat16(tiny_checkpoint: str, tmp_path: Path) -> None:
    from lensbatch.store.db import ensure_schema
    from scheduler.local import run_local

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(f'{{"text": "{t.strip()}"}}\n' for t in TEXTS))
    engine = ensure_schema(f"sqlite:///{tmp_path / 'r.db'}")
    spec = JobSpec(model=tiny_checkpoint, dtype="bfloat16")
    report = run_local(engine, str(corpus), spec, "cuda")
    assert report.summary.status == "done" and report.summary.n_done == len(TEXTS)
