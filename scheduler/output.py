"""Rendering results: rich tables for people, csv and jsonl for programs."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from scheduler.queries import JobSummary

FORMATS = ("table", "csv", "jsonl", "parquet")
TEXT_FORMATS = ("table", "csv", "jsonl")  # the ones that can go to standard output


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def write_rows(
    rows: Iterable[dict[str, Any]], columns: Sequence[str], fmt: str, out: IO[str]
) -> int:
    """Write rows in `fmt`; return how many were written."""
    count = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row) + "\n")
            count += 1
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*(_fmt(row[c]) for c in columns))
            count += 1
        Console(file=out, width=max(120, len(columns) * 12)).print(table)
    return count


def summary_table(summary: JobSummary, seconds: float | None = None) -> Table:
    table = Table(title=f"job {summary.job_id} · {summary.model} · {summary.status}",
                  show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_row("documents", f"{summary.n_done} / {summary.n_documents}")
    table.add_row("tokens", str(summary.n_tokens))
    table.add_row("loss (token-weighted, nats)", _fmt(summary.loss))
    table.add_row("accuracy", _fmt(summary.accuracy))
    table.add_row("induction hit rate",
                  f"{_fmt(summary.induction_hit_rate)} "
                  f"({summary.induction_hits}/{summary.induction_candidates})")
    if seconds:
        table.add_row("tokens per second", f"{summary.n_tokens / seconds:.1f}")
    if summary.error:
        table.add_row("error", summary.error)
    return table


def print_error(message: str) -> None:
    sys.stderr.write(f"lensbatch: error: {message}\n")
