"""The ablation hooks on a real toy-induction: a mean is each head's output averaged
over every position of the reference documents, and an ablated head outputs exactly
its replacement at every position, the other heads untouched."""

from __future__ import annotations

from typing import Any

import torch

from worker.engine.ablation import HeadAblation, ablating, reference_means, z_hook
from worker.engine.evaluate import tokenize
from worker.engine.models import load_model

TEXTS = ["The keeper climbed the stairs. The keeper climbed the stairs.",
         "Mira signed the ledger and sealed the crates."]


def captured_z(model: Any, tokens: list[int], layer: int) -> torch.Tensor:
    """[pos, head, d_head] at hook_z of `layer`, after any hook put on before."""
    seen: list[torch.Tensor] = []
    with torch.inference_mode(), model.hooks(fwd_hooks=[
            (z_hook(layer), lambda z, hook: seen.append(z[0].clone()))]):
        model(torch.tensor([tokens]), return_type=None)
    return seen[0]


def test_reference_means_average_every_position() -> None:
    model = load_model("toy-induction", "cpu", "float32")
    docs = tokenize(model, TEXTS, None)
    means = reference_means(model, docs, ((1, 2), (0, 1)))
    for layer, head in ((1, 2), (0, 1)):
        stacked = torch.cat([captured_z(model, d, layer)[:, head] for d in docs])  # [pos, d]
        assert torch.allclose(means[(layer, head)], stacked.double().mean(0).float(),
                              atol=1e-6)
        assert means[(layer, head)].abs().max() > 0  # these heads write something


def test_an_ablated_head_outputs_its_replacement_only() -> None:
    model = load_model("toy-induction", "cpu", "float32")
    (tokens,) = tokenize(model, TEXTS[:1], None)
    clean = captured_z(model, tokens, 1)
    means = reference_means(model, [tokens], ((1, 2),))
    for ablation, expected in ((HeadAblation(((1, 2),)), torch.zeros(128)),
                               (HeadAblation(((1, 2),), means), means[(1, 2)])):
        with ablating(model, ablation):
            z = captured_z(model, tokens, 1)
        assert torch.equal(z[:, 2], expected.expand_as(z[:, 2]))
        assert torch.equal(z[:, [0, 1, 3]], clean[:, [0, 1, 3]])
    assert torch.equal(captured_z(model, tokens, 1), clean)  # the hooks are off again
