"""Planning tasks before any tokenizer has seen the text: the scheduler has no model, so
token counts are estimated from characters (four per token, the usual figure for
English with GPT-2's BPE). `submit`, `resume` and progress's ETA share this estimate."""

from __future__ import annotations

CHARS_PER_TOKEN = 4


def estimate_tokens(n_chars: int, n_documents: int = 1) -> int:
    """Tokens of `n_documents` documents holding `n_chars` characters in all (each
    document adds one for its BOS and the rounding)."""
    return n_chars // CHARS_PER_TOKEN + n_documents


class TaskPlanner:
    """Groups consecutive documents into tasks of about `budget` estimated tokens."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.tasks: list[list[int]] = []
        self._tokens = 0

    def add(self, seq: int, n_chars: int) -> None:
        tokens = estimate_tokens(n_chars)
        if not self.tasks or self._tokens + tokens > self.budget:
            self.tasks.append([])
            self._tokens = 0
        self.tasks[-1].append(seq)
        self._tokens += tokens
