"""Row g: peak memory of the evaluation path with and without activation summaries.

Each measurement is a fresh `lensbatch run` process (model load, evaluation, SQLite
writes) under bench.rss, so the figure is that process's own peak RSS and nothing of
the benchmark's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.workers import LENSBATCH

SUMMARIES = ("--activations", "resid_post,pattern", "--stats", "mean,norm")


def run_peak_rss_mb(corpus: Path, model: str, database: Path, extra: tuple[str, ...]) -> float:
    env = {**os.environ, "LENSBATCH_DATABASE_URL": f"sqlite:///{database}"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.rss", LENSBATCH, "run", str(corpus), "--model", model,
         "--device", "cpu", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"lensbatch run exited {proc.returncode}: {proc.stderr[-500:]}")
    return float(proc.stderr.rsplit("peak_rss_mb=", 1)[1])


def summary_memory(corpus: Path, model: str, work: Path, reps: int) -> tuple[float, float]:
    """Median peak RSS (MB) without and with `--activations resid_post,pattern`,
    measured alternately."""
    plain: list[float] = []
    summaries: list[float] = []
    for rep in range(reps):
        plain.append(run_peak_rss_mb(corpus, model, work / f"mem-plain-{rep}.db", ()))
        summaries.append(run_peak_rss_mb(corpus, model, work / f"mem-acts-{rep}.db", SUMMARIES))
    plain.sort()
    summaries.sort()
    return plain[len(plain) // 2], summaries[len(summaries) // 2]
