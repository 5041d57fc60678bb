"""The one structured log line a worker writes per task: key=value pairs, greppable."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from lensbatch import schema


def task_tokens(engine: Engine, job_id: str, seqs: list[int]) -> int:
    """Tokens of the task's documents that have results (what the task accounts for)."""
    r = schema.results
    with engine.connect() as connection:
        return int(connection.scalar(
            select(func.coalesce(func.sum(r.c.n_tokens), 0))
            .where(r.c.job_id == job_id, r.c.seq.in_(seqs))
        ) or 0)


def task_line(job_id: str, seqs: list[int], written: int, tokens: int, seconds: float,
              device: str) -> str:
    """e.g. `task job=3f2a… seqs=0-7 documents=8 written=8 tokens=2048 seconds=1.52
    tokens_per_s=1347.4 device=cuda:0`. `written` is 0 for a redelivered task whose results
    already existed; seqs is the range of document numbers the task carried."""
    rate = tokens / seconds if seconds > 0 else 0.0
    span = f"{seqs[0]}-{seqs[-1]}" if seqs else "-"
    return (f"task job={job_id} seqs={span} documents={len(seqs)} written={written} "
            f"tokens={tokens} "
            f"seconds={seconds:.2f} tokens_per_s={rate:.1f} device={device}")
