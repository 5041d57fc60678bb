"""The report's Activations section: for a job run with --activations and --stats, each
statistic of each hook averaged over the job's documents (and over the heads of a
per-head hook), one table per kind of hook with a row per layer, and a bar per value
scaled to the largest magnitude in its column, so a trend across layers shows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from lensbatch.hooks import STATS
from lensbatch.store import report_data
from scheduler.report.html import ReportContext, esc, section

_IN_BLOCK = re.compile(r"blocks\.\d+\.(.+)")


def hook_kind(hook: str) -> str:
    """The hook's name without its block: blocks.3.hook_resid_post -> hook_resid_post."""
    match = _IN_BLOCK.fullmatch(hook)
    return match.group(1) if match else hook


def _bar_cell(value: float | None, largest: float) -> str:
    if value is None:
        return '<td>-</td><td class="bar"></td>'
    width = 0.0 if not largest else 100.0 * abs(value) / largest
    colour = "#dd8452" if value < 0 else "#4c72b0"
    return (f"<td>{value:.4g}</td><td class=\"bar\"><span style=\"width: {width:.1f}%; "
            f'background: {colour}" title="{value:.6g}"></span></td>')


def kind_table(kind: str, rows: Sequence[Any]) -> str:
    """One kind of hook: a row per layer (or one row outside the blocks), a column pair
    (value, bar) per statistic, in STATS order."""
    stats = [s for s in STATS if any(row.stat == s for row in rows)]
    by_layer: dict[int, dict[str, Any]] = {}
    for row in rows:
        by_layer.setdefault(int(row.layer), {})[row.stat] = row
    largest = {s: max((abs(float(r[s].mean)) for r in by_layer.values()
                       if s in r and r[s].mean is not None), default=0.0) for s in stats}
    header = "<tr><th>layer</th>" + "".join(f'<th colspan="2">{esc(s)}</th>'
                                            for s in stats) + "<th>documents</th></tr>"
    body = ""
    for layer, found in sorted(by_layer.items()):
        first = next(iter(found.values()))
        n_docs = int(first.n_values) // max(int(first.n_heads), 1)
        cells = "".join(_bar_cell(None if s not in found or found[s].mean is None
                                  else float(found[s].mean), largest[s]) for s in stats)
        name = "-" if layer == report_data.NO_LAYER else str(layer)
        body += f'<tr title="{esc(first.hook)}"><td>{name}</td>{cells}<td>{n_docs}</td></tr>'
    heads = max(int(row.n_heads) for row in rows)
    note = f" (also averaged over its {heads} heads)" if heads > 1 else ""
    return (f"<h3>{esc(kind)}{esc(note)}</h3>"
            f'<table class="grid acts" data-hook="{esc(kind)}">{header}{body}</table>')


def activations_section(ctx: ReportContext) -> str | None:
    rows = report_data.activation_means(ctx.engine, ctx.job_id)
    if not rows:
        return None
    kinds: dict[str, list[Any]] = {}
    for row in rows:
        kinds.setdefault(hook_kind(row.hook), []).append(row)
    intro = ("<p>The statistics stored with --activations and --stats, each averaged over "
             "the job's documents (each document's value as the workers stored it). Bars "
             "are scaled to the largest magnitude in their column; orange is negative. "
             "Hover a row for its full hook name.</p>")
    return section("Activations", intro + "".join(kind_table(kind, found)
                                                  for kind, found in kinds.items()),
                   "activations")
