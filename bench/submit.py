"""Row f: `lensbatch submit` of a large JSONL file, as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.workers import LENSBATCH, Services


@dataclass(frozen=True)
class SubmitRun:
    n_docs: int
    megabytes: float
    seconds: float
    peak_rss_mb: float


def submit_large(services: Services, corpus: Path, n_docs: int, log: Path) -> SubmitRun:
    with log.open("ab") as out:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bench.rss", LENSBATCH, "submit",
                               str(corpus)], env=services.env(), stdout=out,
                              stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"lensbatch submit exited {proc.returncode}: {proc.stderr[-500:]}")
    peak = float(proc.stderr.rsplit("peak_rss_mb=", 1)[1])
    return SubmitRun(n_docs, corpus.stat().st_size / 1e6, seconds, peak)
