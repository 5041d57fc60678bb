"""Report sections for per-head scores: a layer x head heatmap per score that the metric
registry draws (lensbatch/metrics.py), and the repeated-tokens probe. A section whose
job has no rows returns None, so the report leaves it out."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from lensbatch.metrics import HEAD_SCORES, HeadScore
from lensbatch.store import report_data
from lensbatch.store.head_queries import head_means, job_probe, probe_head_rows
from scheduler.output import has_no_heads, no_heads_line
from scheduler.report.heatmap import heatmap
from scheduler.report.html import ReportContext, Section, esc, grid_table, num, section

TOP_HEADS = 8


def head_grid(rows: list[Any], score: str) -> np.ndarray:
    """[n_layers, n_heads] from rows with layer, head and `score`; NaN where missing."""
    n_layers = max(row.layer for row in rows) + 1
    n_heads = max(row.head for row in rows) + 1
    grid = np.full((n_layers, n_heads), np.nan)
    for row in rows:
        value = row._mapping[score]
        if value is not None:
            grid[row.layer, row.head] = float(value)
    return grid


def top_heads(grid: np.ndarray, n: int = TOP_HEADS) -> list[tuple[str, float]]:
    """The n highest cells as ("layer.head", score), best first."""
    flat = np.nan_to_num(grid, nan=-np.inf).ravel()
    order = np.argsort(-flat, kind="stable")[:n]
    n_heads = grid.shape[1]
    return [(f"{i // n_heads}.{i % n_heads}", float(flat[i])) for i in order
            if np.isfinite(flat[i])]


def _heatmap_block(rows: list[Any], score: str, title: str) -> str:
    """The top heads first (the finding), then the whole layer x head grid."""
    grid = head_grid(rows, score)
    table = grid_table(["head", "score"], [[name, num(value, 3)] for name, value
                                           in top_heads(grid)])
    return (f"<div class='heads-row'><div><p class='meta'>Top heads (layer.head):</p>"
            f"{table}</div>{heatmap(grid, title)}</div>")


def score_section(score: HeadScore, ctx: ReportContext) -> str | None:
    """One head score averaged over the corpus, as a heatmap and its top heads."""
    rows = head_means(ctx.engine, ctx.job_id)
    if score.heatmap is None or all(row._mapping[score.name] is None for row in rows):
        return None
    body = f"<p>{score.heatmap.intro}</p>" + _heatmap_block(rows, score.name,
                                                           score.heatmap.title)
    return section(score.heatmap.heading, body, score.heatmap.anchor)


def probe_section(ctx: ReportContext) -> str | None:
    from scheduler.report.plots import bars

    probe = job_probe(ctx.engine, ctx.job_id)
    if probe is None or probe.first_copy_loss is None or probe.second_copy_loss is None:
        return None
    rows = probe_head_rows(ctx.engine, ctx.job_id)
    parts = [
        f"<p>Random tokens repeated twice ({probe.n_tokens} tokens per copy). A model with "
        "induction heads predicts the second copy from the first.</p>",
        bars(["first copy", "second copy"],
             [float(probe.first_copy_loss), float(probe.second_copy_loss)],
             "loss (nats per token)", "Repeated-tokens probe loss"),
        grid_table(["first-copy loss", "second-copy loss"],
                   [[num(probe.first_copy_loss, 3), num(probe.second_copy_loss, 3)]]),
    ]
    if rows:
        parts.append(_heatmap_block(rows, "induction_score", "Probe induction score"))
    return section("Repeated-tokens probe", "".join(parts), "probe")


def no_heads_section(ctx: ReportContext) -> str | None:
    """For a model without attention heads, say so where the heatmaps would be."""
    if not has_no_heads(report_data.model_card(ctx.engine, ctx.job["model"])):
        return None
    body = (f"<p>{esc(no_heads_line(ctx.job['model']))}. Loss, accuracy and induction "
            "hits are behavioural and are reported below as for any model.</p>")
    return section("Attention heads", body, "no-heads")


HEAD_SECTIONS: tuple[Section, ...] = (
    no_heads_section,
    *(partial(score_section, score) for score in HEAD_SCORES if score.heatmap),
    probe_section,
)
