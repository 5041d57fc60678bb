"""The induction probe: the standard test for induction heads, once per model.

The input is [BOS] + X + X, where X is N_COPY distinct random tokens (seeded, never
BOS). A model with induction heads predicts the second copy: its loss there drops far
below the first copy's. Each head's scores are those of TransformerLens's
head_detector.detect_head with exclude_bos=True and the default "mul" measure:
attention on the detection pattern's entries divided by all attention off BOS,
summed over every query. Here they are reduced in hooks during the single forward
pass that also gives the losses.
"""

from __future__ import annotations

import functools
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from transformer_lens.model_bridge import TransformerBridge

from lensbatch.evaluation import ProbeResult
from lensbatch.settings import DEFAULT_CACHE_DIR
from worker.engine.card import attention_layers
from worker.engine.token_metrics import next_token_nll

SEED = 0
N_COPY = 100


def probe_tokens(model: TransformerBridge) -> torch.Tensor:  # [1, 1 + 2 n]
    """[BOS] + X + X. X is shorter than N_COPY when the context is: detect_head needs the
    whole sequence strictly shorter than n_ctx."""
    n = min(N_COPY, (int(model.cfg.n_ctx) - 2) // 2)
    tokenizer = model.tokenizer
    # A tokenizer without BOS leads with its EOS (or token 0): the first position only
    # has to be a token that neither copy holds.
    bos = next((int(t) for t in (tokenizer.bos_token_id, tokenizer.eos_token_id)
                if t is not None), 0)
    generator = torch.Generator().manual_seed(SEED)
    candidates = torch.randperm(int(model.cfg.d_vocab), generator=generator)
    x = candidates[candidates != bos][:n]
    return torch.cat([torch.tensor([bos]), x, x])[None]


def detection_patterns(tokens: torch.Tensor) -> torch.Tensor:  # [2, pos, pos] float
    """head_detector's induction and previous-token patterns for one sequence [pos].

    induction[q, k] = 1 where token k - 1 equals token q and k - 1 < q; previous[q, k]
    = 1 where k = q - 1.
    """
    n = tokens.shape[0]
    earlier = (tokens[:, None] == tokens[None, :]) & torch.ones(n, n, dtype=torch.bool).tril(-1)
    induction = F.pad(earlier[:, :-1], (1, 0))
    previous = torch.ones(n, n, dtype=torch.bool).tril(-1) & ~torch.ones(
        n, n, dtype=torch.bool).tril(-2)
    return torch.stack((induction, previous)).float()


def _scores(
    patterns: torch.Tensor,  # [2, pos, pos]
    out: dict[int, torch.Tensor],
    layer: int,
    pattern: torch.Tensor,  # [1, head, q, k]
    hook: Any,
) -> None:
    attention = pattern[0].float()
    off_bos = attention[:, :, 1:]  # exclude_bos: BOS's column counts nowhere
    total = off_bos.sum((-2, -1))  # [head]
    hits = torch.einsum("hqk,dqk->dh", off_bos, patterns[:, :, 1:])  # [2, head]
    out[layer] = hits / total


def run_probe(model: TransformerBridge) -> ProbeResult:
    tokens = probe_tokens(model).to(model.cfg.device)
    n = (tokens.shape[1] - 1) // 2
    patterns = detection_patterns(tokens[0].cpu()).to(model.cfg.device)
    scores: dict[int, torch.Tensor] = {}
    hooks = [(f"blocks.{layer}.attn.hook_pattern", partial(_scores, patterns, scores, layer))
             for layer in attention_layers(model)]
    with torch.inference_mode(), model.hooks(fwd_hooks=hooks):
        logits = model(tokens, return_type="logits")
    nll = next_token_nll(logits, tokens)[0].double().cpu()  # nll[i]: loss on token i + 1
    # [layer][2][head]; a layer without attention heads (a state-space layer) has none.
    per_layer = [scores[layer].cpu().tolist() if layer in scores else [[], []]
                 for layer in range(int(model.cfg.n_layers))]
    # Each copy's first token cannot be predicted from the copy, so neither loss counts it.
    return ProbeResult(
        n_tokens=n,
        first_copy_loss=float(nll[1:n].mean()),
        second_copy_loss=float(nll[n + 1:2 * n].mean()),
        induction_scores=[layer[0] for layer in per_layer],
        prev_token_scores=[layer[1] for layer in per_layer],
    )


@functools.lru_cache(maxsize=4)
def probe_model(name: str, device: str, dtype: str,
                cache_dir: str = DEFAULT_CACHE_DIR) -> ProbeResult:
    """run_probe for a loaded model, once per process (the worker keeps its models)."""
    from worker.engine.models import load_model

    return run_probe(load_model(name, device, dtype, cache_dir))
