"""Row g: peak memory of the evaluation path with and without activation summaries, and
with batches of 8,192 tokens instead of the CPU's 1,024.

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
LARGE_BATCHES = ("--batch-tokens", "8192")


def run_peak_rss_mb(corpus: Path, model: str, database: Path, extra: tuple[str, ...],
                    env_extra: dict[str, str] | None = None) -> float:
    env = {**os.environ, "LENSBATCH_DATABASE_URL": f"sqlite:///{database}", **(env_extra or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.rss", LENSBATCH, "run", str(corpus), "--model", model,
         "--device", "cpu", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"lensbatch run exited {proc.returncode}: {proc.stderr[-500:]}")
    return float(proc.stderr.rsplit("peak_rss_mb=", 1)[1])


def peak_memory(corpus: Path, model: str, work: Path, variants: dict[str, tuple[str, ...]],
                reps: int) -> dict[str, float]:
    """Median peak RSS (MB) of `lensbatch run` with each variant's extra options,
    the variants measured in turn, `reps` times each."""
    peaks: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(reps):
        for i, (name, extra) in enumerate(variants.items()):
            peaks[name].append(run_peak_rss_mb(corpus, model, work / f"mem-{i}-{rep}.db", extra))
    return {name: sorted(values)[len(values) // 2] for name, values in peaks.items()}
