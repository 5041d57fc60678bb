"""Loss and argmax hit per row of logits, against torch's own cross-entropy and argmax."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from worker.engine.token_metrics import target_scores

VOCAB = 50257


def reference(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (F.cross_entropy(logits.double(), targets, reduction="none").float(),
            logits.argmax(-1) == targets)


def test_random_rows_match_cross_entropy_and_argmax() -> None:
    torch.manual_seed(0)
    logits = torch.randn(300, VOCAB) * 3
    targets = torch.randint(0, VOCAB, (300,))
    targets[:100] = logits[:100].argmax(-1)  # a third of the rows hit
    want_nll, want_hit = reference(logits, targets)
    nll, hit = target_scores(logits.clone(), targets)
    torch.testing.assert_close(nll, want_nll, rtol=1e-5, atol=1e-5)
    assert torch.equal(hit, want_hit) and int(hit.sum()) == 100


def test_a_tied_maximum_hits_only_at_its_first_index() -> None:
    logits = torch.zeros(5, VOCAB)
    logits[:, [7, 300, 40000]] = 2.0  # three maximal entries per row
    targets = torch.tensor([7, 300, 40000, 0, 8])
    want_nll, want_hit = reference(logits, targets)
    nll, hit = target_scores(logits.clone(), targets)
    assert hit.tolist() == [True, False, False, False, False] == want_hit.tolist()
    torch.testing.assert_close(nll, want_nll, rtol=1e-5, atol=1e-5)
    flat = torch.zeros(2, VOCAB)  # every entry maximal: only index 0 is argmax's
    assert target_scores(flat.clone(), torch.tensor([0, 1]))[1].tolist() == [True, False]
