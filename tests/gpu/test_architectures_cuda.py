"""Architectures beyond GPT-2 on CUDA, in bfloat16: the same numbers as float32 within
bfloat16's precision, and `lensbatch run` end to end. Skips where there is no CUDA."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lensbatch.jobspec import JobSpec
from tests.matrix import TEXTS, write_corpus
from worker.engine.evaluate import analyse_tokens, tokenize
from worker.engine.models import load_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
ARCHITECTURES = ("llama", "gemma2", "qwen2", "mixtral", "mamba", "olmo-hybrid")


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_bfloat16_close_to_float32(name: str, matrix_checkpoint: Callable[[str], str]) -> None:
    path = matrix_checkpoint(name)
    full = load_model(path, "cuda", "float32")
    half = load_model(path, "cuda", "bfloat16")
    assert next(half.parameters()).dtype == torch.bfloat16
    assert next(half.parameters()).device.type == "cuda"
    docs = tokenize(full, TEXTS, None)
    spec = JobSpec(activations=("resid_post",), stats=("mean",))
    for a, b in zip(analyse_tokens(half, docs, JobSpec(dtype="bfloat16", activations=(
            "resid_post",), stats=("mean",))), analyse_tokens(full, docs, spec), strict=True):
        assert a.metrics.n_predictions == b.metrics.n_predictions
        assert a.metrics.loss == pytest.approx(b.metrics.loss, rel=0.02)
        assert [len(h) for h in a.heads["attn_entropy"]] == [
            len(h) for h in b.heads["attn_entropy"]]


def test_lensbatch_run_llama_on_cuda_in_bfloat16(matrix_checkpoint: Callable[[str], str],
                                                 tmp_path: Path) -> None:
    from lensbatch.store.db import ensure_schema
    from scheduler.local import run_local

    engine = ensure_schema(f"sqlite:///{tmp_path / 'r.db'}")
    spec = JobSpec(model=matrix_checkpoint("llama"), dtype="bfloat16")
    report = run_local(engine, str(write_corpus(tmp_path / "c.jsonl")), spec, "cuda")
    assert report.summary.status == "done" and report.summary.n_done == len(TEXTS)
