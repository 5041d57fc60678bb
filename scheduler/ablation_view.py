"""`lensbatch ablations SWEEP`: an ablation sweep's heads ranked by what switching each
off costs, as rows for a table, csv, jsonl or Parquet.

The unablated job is the baseline; every other job's paired differences come from a
few sums per job that one SQL query works out (lensbatch/store/ablations.py), with the
normal approximation's 95% interval (lensbatch/ablation.py): well under a second for
GPT-2 small's 144 heads (bench row r).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from lensbatch.ablation import DIFFERENCE_SUMS, HeadEffect, head_label, paired_difference, ranked
from lensbatch.errors import JobNotFound, UserError
from lensbatch.store.ablations import RATE_PARTS, AblationJob, ablation_jobs, difference_sums

RATES = tuple(name for name, _, _ in RATE_PARTS)
NOTE = ("ablated minus unablated, paired by document; [low, high]: 95% interval, normal "
        "approximation over documents; * where it excludes 0")


@dataclass(frozen=True)
class Ablations:
    sweep_id: str
    baseline: AblationJob
    ablation: str  # zero or mean, as the ablated jobs ran
    effects: list[HeadEffect]  # ranked: largest loss increase first


def gather(engine: Engine, sweep_id: str) -> Ablations:
    """The sweep's heads, ranked; JobNotFound or UserError for a sweep that is not one."""
    jobs = ablation_jobs(engine, sweep_id)
    if not jobs:
        raise JobNotFound(f"no sweep {sweep_id!r} (the id that run or submit "
                          "--ablate-each-head printed)")
    baselines = [job for job in jobs if not job.heads]
    ablated = [job for job in jobs if job.heads]
    if len(baselines) != 1 or not ablated:
        raise UserError(f"sweep {sweep_id} is not an ablation sweep (one unablated job and "
                        "jobs with heads ablated: run or submit it with --ablate-each-head)")
    baseline = baselines[0]
    sums = difference_sums(engine, baseline.job_id, [job.job_id for job in ablated])
    effects = []
    for job in ablated:
        found = sums.get(job.job_id)
        n = int(found["n"]) if found is not None else 0
        differences = {rate: paired_difference(n, {part: float(
            found[f"{rate}:{part}"] or 0.0) if found is not None else 0.0
            for part in DIFFERENCE_SUMS}) for rate in RATES}
        effects.append(HeadEffect(job.job_id, job.heads, n, differences))
    return Ablations(sweep_id, baseline, ablated[0].ablation, ranked(effects))


COLUMNS = ["rank", "head", "job", "ablation", "documents",
           *(f"{rate}{suffix}" for rate in RATES
             for suffix in ("_difference", "_low", "_high", "_excludes_zero"))]


def rows(found: Ablations) -> list[dict[str, Any]]:
    """One row per ablated job, for csv, jsonl and Parquet."""
    out = []
    for rank, effect in enumerate(found.effects, start=1):
        row: dict[str, Any] = {"rank": rank, "head": ",".join(map(head_label, effect.heads)),
                               "job": effect.job_id, "ablation": found.ablation,
                               "documents": effect.documents}
        for rate in RATES:
            diff = effect.differences[rate]
            row.update({f"{rate}_difference": diff.value, f"{rate}_low": diff.low,
                        f"{rate}_high": diff.high,
                        f"{rate}_excludes_zero": diff.excludes_zero})
        out.append(row)
    return out


def table_rows(found: Ablations) -> tuple[list[str], list[dict[str, Any]]]:
    """The table format's columns and rows of text."""
    from scheduler.output import difference_text

    columns = ["rank", "head", "job", "documents", *(f"{rate} change" for rate in RATES)]
    text = [{"rank": rank, "head": ",".join(map(head_label, effect.heads)),
             "job": effect.job_id, "documents": effect.documents,
             **{f"{rate} change": difference_text(effect.differences[rate]) for rate in RATES}}
            for rank, effect in enumerate(found.effects, start=1)]
    return columns, text


def heading(found: Ablations) -> list[str]:
    base = found.baseline
    return [f"{len(found.effects)} heads of {base.model} ablated ({found.ablation}), by "
            f"loss increase over the unablated job {base.job_id}", NOTE]


def is_ablation_sweep(engine: Engine, sweep_id: str) -> bool:
    """An --ablate-each-head sweep: the unablated job first, then jobs with heads ablated."""
    jobs = ablation_jobs(engine, sweep_id)
    return len(jobs) > 1 and not jobs[0].heads and all(job.heads for job in jobs[1:])
