"""Evaluating a task's documents with their top activations (--top-activations).

The top activations of a forward pass cover every document it read, so they are kept
only from a pass over exactly the documents that succeed: the task's documents
together when none fails (the usual case, one pass), else, after isolating the
failures (worker/isolate.py), one more pass over the documents that succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformer_lens.model_bridge import TransformerBridge

from lensbatch.jobspec import JobSpec
from lensbatch.store.tasks import Outcome
from lensbatch.top import HookTop
from worker.engine.evaluate import analyse_texts, analyse_texts_top
from worker.isolate import checked, evaluate_each, evaluate_isolating


def evaluate_task(model: TransformerBridge, spec: JobSpec, todo: Sequence[tuple[int, str]]
                  ) -> tuple[Outcome, list[HookTop]]:
    """The documents' evaluations (failures isolated) and the top activations of
    exactly those that succeeded, [] for a job without --top-activations."""
    def evaluate(texts: list[str]) -> list:  # type: ignore[type-arg]
        return analyse_texts(model, texts, spec)

    if not spec.top_activations:
        return evaluate_isolating(evaluate, todo), []
    seqs = [seq for seq, _ in todo]
    try:
        evaluations, tops = analyse_texts_top(model, [text for _, text in todo], spec, seqs)
    except Exception:  # any model failure: each document alone, as evaluate_isolating
        outcome = evaluate_each(evaluate, todo)
    else:
        outcome = checked(todo, evaluations)
        if not outcome.failed:
            return outcome, tops
    if not outcome.done:
        return outcome, []
    text_of = dict(todo)
    done = [seq for seq, _ in outcome.done]
    _, tops = analyse_texts_top(model, [text_of[seq] for seq in done], spec, done)
    return outcome, tops
