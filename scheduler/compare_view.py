"""`lensbatch compare`: jobs side by side, as rows for a table, csv, jsonl or Parquet.

Four parts: the corpus rates of each job with their 95% intervals (`corpus`), each
job's paired difference from the first job (`differences`), the shared documents whose
loss differs most (`documents`) and the per-head score differences (`heads`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from lensbatch.ablation import head_label
from lensbatch.bootstrap import BOOTSTRAP_DOCUMENTS, Interval
from lensbatch.compare import (
    RATES,
    Comparison,
    compare,
    corpus_intervals,
    counter_intervals,
    document_differences,
    head_differences,
    job_documents,
)
from lensbatch.errors import UserError
from lensbatch.metrics import HEAD_SCORES
from lensbatch.store.head_queries import head_means
from lensbatch.store.queries import JobSummary, job_moments, job_summary
from lensbatch.store.sweeps import document_sums, resolve_jobs

PARTS = ("corpus", "differences", "documents", "heads")


def job_intervals(engine: Engine, summary: JobSummary) -> dict[str, Interval]:
    """A job's rates (lensbatch/metrics.py's Ratio metrics) with their 95% intervals: the
    bootstrap over its documents, or, past BOOTSTRAP_DOCUMENTS, the normal approximation
    from its counters (the summary's sums and a few rows, whatever the job's size)."""
    if summary.n_done > BOOTSTRAP_DOCUMENTS:
        return counter_intervals(summary.n_done, summary.totals,
                                 job_moments(engine, summary.job_id))
    return corpus_intervals(document_sums(engine, summary.job_id))


@dataclass(frozen=True)
class Compared:
    summaries: list[JobSummary]
    comparison: Comparison
    documents: list[dict[str, Any]]  # document_differences
    heads: list[dict[str, Any]]  # head_differences, `top` per job after the first


def gather(engine: Engine, ids: list[str], top: int) -> Compared:
    """Everything `compare` shows, for job or sweep ids (JobNotFound for a wrong one)."""
    job_ids = resolve_jobs(engine, ids)
    if len(job_ids) < 2:
        raise UserError("compare needs two jobs or more (or a sweep of two or more)")
    if top < 1:
        raise UserError(f"--top must be at least 1, got {top}")
    summaries = [job_summary(engine, job_id) for job_id in job_ids]
    comparison = compare([job_documents(s.job_id, s.model, document_sums(engine, s.job_id))
                          for s in summaries])
    if comparison.n_shared == 0:
        raise UserError("the jobs have no document with a result in common")
    base = [dict(row._mapping) for row in head_means(engine, job_ids[0])]
    heads = [row for job_id in job_ids[1:] for row in head_differences(
        job_id, base, [dict(r._mapping) for r in head_means(engine, job_id)])[:top]]
    return Compared(summaries, comparison, document_differences(comparison, top), heads)


def shared_line(compared: Compared) -> str:
    c = compared.comparison
    own = ", ".join(f"{s.job_id} {n}" for s, n in zip(compared.summaries, c.own_documents,
                                                      strict=True))
    return (f"compared on {c.n_shared} documents that all {len(compared.summaries)} jobs "
            f"have results for (documents with results: {own})")


def _step(summary: JobSummary) -> int | None:
    return summary.sweep.step if summary.sweep is not None else None


# In csv, jsonl and Parquet, the heads an ablated job switches off (`1.2,0.1`) and how
# (zero or mean); both empty for an unablated job. The table format shows them in its
# model column instead (JobSummary.label).
ABLATION_COLUMNS = ("ablate", "ablation")


def _ablation(summary: JobSummary) -> dict[str, str | None]:
    if not summary.ablate:
        return {"ablate": None, "ablation": None}
    return {"ablate": ",".join(map(head_label, summary.ablate)), "ablation": summary.ablation}


def corpus_rows(compared: Compared) -> tuple[list[str], list[dict[str, Any]]]:
    columns = ["job", "model", *ABLATION_COLUMNS, "step", "documents", *(
        f"{m.name}{suffix}" for m in RATES for suffix in ("", "_low", "_high"))]
    rows = []
    for summary, rates in zip(compared.summaries, compared.comparison.rates, strict=True):
        row: dict[str, Any] = {"job": summary.job_id, "model": summary.model,
                               **_ablation(summary), "step": _step(summary),
                               "documents": compared.comparison.n_shared}
        for m in RATES:
            row.update({m.name: rates[m.name].value, f"{m.name}_low": rates[m.name].low,
                        f"{m.name}_high": rates[m.name].high})
        rows.append(row)
    return columns, rows


def difference_rows(compared: Compared) -> tuple[list[str], list[dict[str, Any]]]:
    columns = ["job", "model", *ABLATION_COLUMNS, "baseline", "documents", "metric",
               "difference", "low", "high", "excludes_zero"]
    base = compared.summaries[0]
    rows = [{"job": summary.job_id, "model": summary.model, **_ablation(summary),
             "baseline": base.job_id,
             "documents": compared.comparison.n_shared, "metric": m.name,
             "difference": diff[m.name].value, "low": diff[m.name].low,
             "high": diff[m.name].high, "excludes_zero": diff[m.name].excludes_zero}
            for summary, diff in zip(compared.summaries[1:], compared.comparison.differences,
                                     strict=True)
            for m in RATES]
    return columns, rows


DOCUMENT_COLUMNS = ["job", "doc_id", "baseline_loss", "loss", "loss_difference",
                    "baseline_accuracy", "accuracy"]
HEAD_COLUMNS = ["job", "layer", "head", *(
    f"{prefix}{s.name}{suffix}" for s in HEAD_SCORES
    for prefix, suffix in (("baseline_", ""), ("", ""), ("", "_difference")))]


def part_rows(compared: Compared, part: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of one part, for csv, jsonl and Parquet."""
    if part == "corpus":
        return corpus_rows(compared)
    if part == "differences":
        return difference_rows(compared)
    if part == "documents":
        return DOCUMENT_COLUMNS, compared.documents
    return HEAD_COLUMNS, compared.heads


def _change(a: float | None, b: float | None, diff: float | None) -> str:
    if a is None or b is None or diff is None:
        return "-"
    return f"{a:.3f} -> {b:.3f} ({diff:+.3f})"


def table_sections(compared: Compared) -> list[tuple[str, list[str], list[dict[str, Any]]]]:
    """(heading, columns, rows of text) per part, for the table format."""
    from scheduler.output import difference_text, interval_text

    c, summaries = compared.comparison, compared.summaries
    rates = [{"job": s.job_id, "model": s.label, "step": _step(s),
              **{m.label: interval_text(r[m.name]) for m in RATES}}
             for s, r in zip(summaries, c.rates, strict=True)]
    diffs = [{"job": s.job_id, "model": s.label,
              **{f"{m.name} difference": difference_text(d[m.name]) for m in RATES}}
             for s, d in zip(summaries[1:], c.differences, strict=True)]
    heads = [{"job": row["job"], "head": f"{row['layer']}.{row['head']}",
              **{s.name: _change(row[f"baseline_{s.name}"], row[s.name],
                                 row[f"{s.name}_difference"]) for s in HEAD_SCORES}}
             for row in compared.heads]
    return [
        ("Corpus rates", ["job", "model", "step", *(m.label for m in RATES)], rates),
        (f"Paired differences from {summaries[0].job_id} ({summaries[0].label}); * where "
         "the interval excludes 0", ["job", "model", *(f"{m.name} difference" for m in RATES)],
         diffs),
        ("Documents whose loss differs most", DOCUMENT_COLUMNS, compared.documents),
        ("Heads whose scores differ most (per-head means over each job's documents; "
         "baseline -> job (difference))", ["job", "head", *(s.name for s in HEAD_SCORES)],
         heads),
    ]
