"""Planning tasks before any tokenizer has seen the text: the scheduler has no model, so
token counts are estimated from characters (four per token, the usual figure for
English with GPT-2's BPE). `submit`, `resume` and progress's ETA share this estimate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

CHARS_PER_TOKEN = 4
Run = tuple[int, int]  # [start, stop): consecutive document seqs


def estimate_tokens(n_chars: int, n_documents: int = 1) -> int:
    """Tokens of `n_documents` documents holding `n_chars` characters in all (each
    document adds one for its BOS and the rounding)."""
    return n_chars // CHARS_PER_TOKEN + n_documents


class TaskList(Sequence[list[int]]):
    """Planned tasks, each the list of its document seqs, held as runs of consecutive
    seqs: a job of millions of documents costs a few numbers per task, and a task's
    list is made when it is read (to be sent, say)."""

    def __init__(self, runs: list[list[Run]]) -> None:
        self._runs = runs

    def __len__(self) -> int:
        return len(self._runs)

    @overload
    def __getitem__(self, index: int) -> list[int]: ...

    @overload
    def __getitem__(self, index: slice) -> list[list[int]]: ...

    def __getitem__(self, index: int | slice) -> list[int] | list[list[int]]:
        if isinstance(index, slice):
            return [self._expand(runs) for runs in self._runs[index]]
        return self._expand(self._runs[index])

    @staticmethod
    def _expand(runs: list[Run]) -> list[int]:
        return [seq for start, stop in runs for seq in range(start, stop)]


class TaskPlanner:
    """Groups consecutive documents into tasks of about `budget` estimated tokens."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._runs: list[list[Run]] = []
        self._tokens = 0

    @property
    def tasks(self) -> TaskList:
        return TaskList(self._runs)

    def add(self, seq: int, n_chars: int) -> None:
        tokens = estimate_tokens(n_chars)
        if not self._runs or self._tokens + tokens > self.budget:
            self._runs.append([])
            self._tokens = 0
        task = self._runs[-1]
        if task and task[-1][1] == seq:
            task[-1] = (task[-1][0], seq + 1)
        else:
            task.append((seq, seq + 1))
        self._tokens += tokens


# A local run (`lensbatch run`) plans about this many tasks, so that its progress moves
# on a small corpus too.
LOCAL_TASKS = 20


def local_task_tokens(total_tokens: int, floor: int, ceiling: int) -> int:
    """The task size of a local run over `total_tokens` estimated tokens: about a
    LOCAL_TASKS-th of them, at least `floor` (one forward batch: smaller tasks would
    only add transactions), never above `ceiling` (the job's --task-tokens)."""
    share = -(-total_tokens // LOCAL_TASKS)  # rounded up
    return max(1, min(ceiling, max(floor, share)))
