"""One document scored token by token, by the same path a job's documents take
(windows, batches, the same per-position metrics), for `lensbatch tokens` and the
report's hardest documents."""

from __future__ import annotations

from dataclasses import replace

from transformer_lens.model_bridge import TransformerBridge

from lensbatch.jobspec import JobSpec
from lensbatch.tokens import TokenScore
from worker.engine.documents import scored_positions
from worker.engine.evaluate import scored_windows


def score_tokens(model: TransformerBridge, tokens: list[int], spec: JobSpec) -> list[TokenScore]:
    """Each token of one sequence with the loss and induction flags of its prediction."""
    bare = replace(spec, activations=(), stats=())  # statistics are not shown per token
    (parts,) = scored_windows(model, [tokens], bare)
    scored = scored_positions(parts)  # arrays over predictions: index i predicts token i + 1
    out = [TokenScore(0, tokens[0], str(model.tokenizer.decode([tokens[0]])), None, None,
                      False, False, False)]
    for i, token in enumerate(tokens[1:]):
        out.append(TokenScore(
            position=i + 1, token_id=token, text=str(model.tokenizer.decode([token])),
            loss=float(scored.nll[i]), correct=bool(scored.correct[i]),
            candidate=bool(scored.earlier[i] >= 0), hit=bool(scored.hits[i]),
            novel=bool(scored.novel[i])))
    return out
