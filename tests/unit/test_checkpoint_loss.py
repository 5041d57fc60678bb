"""A Hugging Face checkpoint saved locally scores the same through lensbatch as through
transformers, document by document, however the documents are batched."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2LMHeadModel

from lensbatch.jobspec import JobSpec
from worker.engine.evaluate import analyse_texts, tokenize
from worker.engine.models import load_model

TEXTS = [
    "The lighthouse keeper wrote in the log: the lamp is lit, the lamp is lit.",
    "Hello TransformerLens!",
    "Induction heads copy what followed a token last time it appeared in the context.",
    "A short one.",
]


@pytest.mark.parametrize("side", ["right", "left"])
def test_per_document_loss_equals_transformers(tiny_checkpoint: str, side: str) -> None:
    model = load_model(tiny_checkpoint, "cpu", "float32")
    hf = GPT2LMHeadModel.from_pretrained(tiny_checkpoint, attn_implementation="eager").eval()
    spec = JobSpec(padding_side=side, activations=("resid_post",), stats=("mean",))
    found = analyse_texts(model, TEXTS, spec)
    for ids, evaluation in zip(tokenize(model, TEXTS, True), found, strict=True):
        assert len(ids) <= model.cfg.n_ctx  # one window: the two losses are comparable
        with torch.no_grad():
            expected = hf(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
        assert evaluation.metrics.loss == pytest.approx(expected, rel=1e-5)
