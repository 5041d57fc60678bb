"""The one structured log line a worker writes per task: key=value pairs, greppable."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.service import TaskDone


def task_line(job_id: str, seqs: list[int], done: TaskDone, seconds: float,
              device: str) -> str:
    """e.g. `task job=3f2a… seqs=0-7 documents=8 written=8 tokens=2048 seconds=1.52
    tokens_per_s=1347.4 device=cuda:0`. `written` and `tokens` count what this attempt
    committed (0 for a redelivered task whose results already existed); seqs is the
    range of document numbers the task carried."""
    rate = done.tokens / seconds if seconds > 0 else 0.0
    span = f"{seqs[0]}-{seqs[-1]}" if seqs else "-"
    return (f"task job={job_id} seqs={span} documents={len(seqs)} written={done.written} "
            f"tokens={done.tokens} seconds={seconds:.2f} tokens_per_s={rate:.1f} "
            f"device={device}")
