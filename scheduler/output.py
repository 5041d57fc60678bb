"""Rendering results: rich tables for people, csv, jsonl and Parquet for programs."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lensbatch.bootstrap import BOOTSTRAP_DOCUMENTS, SAMPLES, Interval
from lensbatch.errors import UserError
from lensbatch.metrics import DOC_METRICS, DocMetric, Ratio
from lensbatch.store.head_queries import ProbeSummary
from lensbatch.store.queries import JobSummary

FORMATS = ("table", "csv", "jsonl", "parquet")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def write_rows(
    rows: Iterable[dict[str, Any]], columns: Sequence[str], fmt: str, out: IO[str],
    width: int | None = None,
) -> int:
    """Write rows in `fmt`; return how many were written. A table right-aligns its
    columns of numbers; with `width` it is at most that many terminal columns (its
    text cells fold to fit), else as wide as its cells."""
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
        cells: list[list[str]] = []
        numbers = [True] * len(columns)  # every value a number (or missing)
        widths = [max(len(c), 8) for c in columns]  # every header and cell in full
        for row in rows:
            values = [row[c] for c in columns]
            numbers = [n and (v is None or isinstance(v, int | float) and not isinstance(v, bool))
                       for n, v in zip(numbers, values, strict=True)]
            cells.append([_fmt(v) for v in values])
            widths = [max(w, len(cell)) for w, cell in zip(widths, cells[-1], strict=True)]
            count += 1
        table = Table()
        for column, number in zip(columns, numbers, strict=True):
            table.add_column(column, justify="right" if number else "left", no_wrap=number,
                             overflow="fold")
        for line in cells:
            table.add_row(*line)
        natural = max(120, sum(w + 3 for w in widths) + 1)
        Console(file=out, width=natural if width is None else min(width, natural)).print(table)
    return count


INTERVAL_NOTE = (f"[low, high]: 95% interval, bootstrap over documents ({SAMPLES:,} "
                 "resamples, seeded)")
# A job of more than BOOTSTRAP_DOCUMENTS documents (compare_view.job_intervals).
NORMAL_NOTE = "[low, high]: 95% interval, normal approximation over documents"


def interval_note(n_documents: int) -> str:
    """How a job's own intervals were worked out, by its number of documents."""
    return NORMAL_NOTE if n_documents > BOOTSTRAP_DOCUMENTS else INTERVAL_NOTE


def interval_text(interval: Interval, digits: int = 4) -> str:
    """"3.4567 [3.4012, 3.5123]", or the value alone where there is no interval."""
    if interval.value is None:
        return "-"
    shown = f"{interval.value:.{digits}f}"
    if interval.low is None or interval.high is None:
        return shown
    return f"{shown} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"


def difference_text(interval: Interval) -> str:
    """interval_text, marked " *" where the interval excludes 0."""
    return interval_text(interval) + (" *" if interval.excludes_zero else "")


def _corpus_cell(summary: JobSummary, metric: DocMetric,
                 interval: Interval | None = None) -> str:
    value = summary.value(metric.name)
    if metric.kind == "count" and value is not None:
        return str(int(value))
    shown = _fmt(value) if interval is None else interval_text(interval)
    if isinstance(metric.corpus, Ratio) and metric.corpus.show_parts:
        parts = (int(summary.totals[metric.corpus.numerator]),
                 int(summary.totals[metric.corpus.denominator]))
        return f"{shown} ({parts[0]}/{parts[1]})"
    return shown


def summary_table(summary: JobSummary, seconds: float | None = None,
                  probe: ProbeSummary | None = None,
                  intervals: Mapping[str, Interval] | None = None) -> Table:
    """`run`'s and `status`'s summary: the headline metrics of the registry, rates with
    their 95% intervals where `intervals` has them."""
    shown = intervals or {}
    table = Table(title=f"job {summary.job_id} · {summary.label} · {summary.status}",
                  show_header=False,
                  caption=escape(interval_note(summary.n_done))
                  if any(i.low is not None for i in shown.values())
                  else None)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    if summary.sweep is not None:
        step = "" if summary.sweep.step is None else f", step {summary.sweep.step}"
        table.add_row("sweep", f"{summary.sweep.sweep_id} (job {summary.sweep.index + 1}"
                               f"{step})")
    table.add_row("documents", f"{summary.n_done} / {summary.n_documents}")
    for metric in DOC_METRICS:
        if metric.headline:
            table.add_row(metric.label, _corpus_cell(summary, metric, shown.get(metric.name)))
    if probe is not None:
        table.add_row(f"induction probe loss ({probe.n_tokens} random tokens, twice)",
                      f"{_fmt(probe.first_copy_loss)} -> {_fmt(probe.second_copy_loss)}")
    if seconds:
        table.add_row("tokens per second", f"{summary.n_tokens / seconds:.1f}")
    if summary.error:
        table.add_row("error", summary.error)
    return table


def print_error(message: str) -> None:
    sys.stderr.write(f"lensbatch: error: {message}\n")


def print_warning(message: str) -> None:
    sys.stderr.write(f"lensbatch: warning: {message}\n")


def _top(rows: Sequence[dict[str, Any]], column: str, n: int = 3) -> str:
    scored = [r for r in rows if r.get(column) is not None]
    best = sorted(scored, key=lambda r: -r[column])[:n]
    return ", ".join(f"{r['layer']}.{r['head']} ({r[column]:.3f})" for r in best) or "-"


def has_no_heads(card: Any | None) -> bool:
    """Whether a recorded model card (the models row) says the model has no attention
    heads (Mamba, RWKV); False when no card is recorded yet."""
    config = getattr(card, "config", None) or {}
    return bool((config.get("architecture") or {}).get("attention") == "none")


def no_heads_line(model: str) -> str:
    return (f"{model} has no attention heads (a state-space or recurrent model): there are "
            "no per-head scores; the probe's losses still measure in-context copying")


def probe_lines(probe: ProbeSummary | None, rows: Sequence[dict[str, Any]],
                no_heads: bool = False) -> list[str]:
    """What `lensbatch heads` prints above its table: the probe and the top heads, or
    for a model without attention heads the probe's losses and that it has none."""
    if probe is None:
        lines = ["induction probe: not run yet (it runs with the job's first task)"]
    elif no_heads:
        lines = [f"induction probe ({probe.model}): [BOS] + {probe.n_tokens} random tokens, "
                 f"repeated; loss on the first copy {_fmt(probe.first_copy_loss)}, on the "
                 f"second {_fmt(probe.second_copy_loss)} nats"]
    else:
        lines = [f"induction probe ({probe.model}): [BOS] + {probe.n_tokens} random tokens, "
                 f"repeated; loss on the first copy {_fmt(probe.first_copy_loss)}, on the "
                 f"second {_fmt(probe.second_copy_loss)} nats",
                 f"  top induction heads (probe): {_top(rows, 'probe_induction_score')}",
                 f"  top previous-token heads (probe): {_top(rows, 'probe_prev_token_score')}"]
    if no_heads:
        lines.append(no_heads_line(probe.model if probe is not None else "this model"))
    elif any(r["n_documents"] for r in rows):
        lines += [f"  top induction heads (documents): {_top(rows, 'induction_score')}",
                  f"  top previous-token heads (documents): {_top(rows, 'prev_token_score')}"]
    return lines


def score_report(str_tokens: list[str], evaluation: Any) -> list[str]:
    """`lensbatch score`: the seed notebook's sections 2 and 3 for one text."""
    m = evaluation.metrics
    hits = [str_tokens[h.position] for h in evaluation.hits]
    novel = [str_tokens[h.position] for h in evaluation.hits if h.novel]
    lines = [
        f"tokens ({m.n_tokens}): {str_tokens!r}",
        f"loss: {_fmt(m.loss)} nats over {m.n_predictions} predictions",
        f"accuracy: {m.n_correct}/{m.n_predictions}",
        f"induction candidates: {m.induction_candidates} (bigrams seen earlier in the text)",
        f"induction hits: {hits!r}",
        f"novel induction hits (first occurrence predicted wrongly): {novel!r}",
    ]
    heads = [{"layer": layer, "head": head,
              **{field: values[layer][head] for field, values in evaluation.heads.items()}}
             for layer in range(len(evaluation.heads["attn_entropy"]))
             for head in range(len(evaluation.heads["attn_entropy"][layer]))]
    lines += [f"top induction heads: {_top(heads, 'induction_score')}",
              f"top previous-token heads: {_top(heads, 'prev_token_score')}"]
    for hook, per_stat in evaluation.stats.items():
        for stat, values in per_stat.items():
            shown = ", ".join(f"{v:.4g}" for v in values)
            lines.append(f"{hook} {stat}: {shown}")
    return lines


def emit_rows(rows: Iterable[dict[str, Any]], columns: Sequence[str], fmt: str,
              output: str | None, header: Sequence[str] = (), width: int | None = None) -> None:
    """`results` and `heads`: rows in `fmt` to `output` (a file) or standard output.
    `header` lines go before a table (wrapped to `width`, as the table is fitted to it);
    a registry metric's Parquet column gets the metric's type (int64 for counts,
    float64 otherwise). Parquet needs a file."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt}")
    if fmt == "parquet":
        if output is None:
            raise UserError("--format parquet needs --output FILE (Parquet is binary)")
        from scheduler.export import write_parquet

        write_parquet(rows, columns, output)
        return
    with open(output, "w", encoding="utf-8", newline="") if output else nullcontext(
            sys.stdout) as out:
        if fmt == "table":
            from scheduler.columns import wrapped

            for line in header:
                out.write(wrapped(line, width) + "\n")
        write_rows(rows, columns, fmt, out, width)

