"""Repetitions, medians and peak memory of processes."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def side_by_side(runs: Mapping[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """Seconds per repetition for each named run, interleaved (in reverse order every
    other repetition) so that changing load on the machine affects every run alike."""
    return interleaved({name: partial(timed, run) for name, run in runs.items()}, reps)


def interleaved(runs: Mapping[str, Callable[[], float]], reps: int) -> dict[str, list[float]]:
    """side_by_side for runs that time themselves: each returns its own seconds (a
    subprocess that leaves out its start-up and model loading)."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            seconds[name].append(runs[name]())
    return seconds


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over repetitions of numerator[i] / denominator[i]."""
    return median([n / d for n, d in zip(numerator, denominator, strict=True)])


def descendants(pid: int) -> list[int]:
    """pid and every process below it (Celery's pool processes), from /proc."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split() if task.exists() else []
            todo.extend(int(c) for c in children)
    return found


def peak_rss_mb(pid: int) -> float:
    """Largest peak resident set (VmHWM) among a process and its descendants, in MB."""
    peaks = []
    for proc in descendants(pid):
        try:
            status = Path(f"/proc/{proc}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks, default=0.0)

