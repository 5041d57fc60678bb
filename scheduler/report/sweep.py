"""`lensbatch report SWEEP`: one self-contained page for a sweep's jobs, in order.

Each rate across the models with its 95% interval (a line across the training step
where every job has one, else one point per model and no line), for two models each
shared document's loss under one against the other, the per-head scores of every
job as small multiples on one colour scale (the documents' means, and the
repeated-tokens probe's induction score: where induction heads form across
checkpoints), and the paired differences from the first model. Every number comes
from lensbatch/compare.py over the documents all jobs share.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from lensbatch.ablation import job_label
from lensbatch.compare import RATES, document_rates
from lensbatch.metrics import HEAD_SCORES
from lensbatch.store.head_queries import head_means, job_probe, probe_head_rows
from lensbatch.store.queries import JobSummary
from scheduler.compare_view import Compared, gather, shared_line
from scheduler.output import INTERVAL_NOTE, difference_text, interval_text
from scheduler.report.heads import head_grid
from scheduler.report.heatmap import small_heatmaps
from scheduler.report.html import esc, grid_table, num, page, section

TOP_HEADS = 3  # head differences listed per job
SCATTER_DOCUMENTS = 5000  # points drawn in the A-vs-B scatter at most


def _label(summary: JobSummary) -> str:
    """How a job is named on the axis: its step, or its model's short name (with the
    heads it ablates, as JobSummary.label names them)."""
    if summary.sweep is not None and summary.sweep.step is not None:
        return f"step {summary.sweep.step}"
    short = Path(summary.model.rstrip("/")).name or summary.model
    return job_label(short, summary.ablate, summary.ablation)


def _steps(compared: Compared) -> list[int] | None:
    steps = [s.sweep.step if s.sweep is not None else None for s in compared.summaries]
    return None if any(step is None for step in steps) else [int(s or 0) for s in steps]


def jobs_section(engine: Engine, compared: Compared) -> str:
    header = ["#", "step", "job", "model", "status", "documents",
              *(m.label for m in RATES), "probe loss (first -> second copy)"]
    rows: list[list[object]] = []
    for i, (summary, rates) in enumerate(zip(compared.summaries, compared.comparison.rates,
                                             strict=True)):
        probe = job_probe(engine, summary.job_id)
        rows.append([
            i + 1, summary.sweep.step if summary.sweep else None, summary.job_id,
            summary.label, summary.status, f"{summary.n_done} / {summary.n_documents}",
            *(interval_text(rates[m.name]) for m in RATES),
            "-" if probe is None else f"{num(probe.first_copy_loss, 3)} -> "
                                      f"{num(probe.second_copy_loss, 3)}"])
    body = (f"<p>{esc(shared_line(compared))}. {esc(INTERVAL_NOTE)}.</p>"
            + f'<div id="sweep-jobs">{grid_table(header, rows)}</div>')
    return section("Jobs", body, "jobs")


def metrics_section(compared: Compared) -> str:
    from scheduler.report.plots import interval_panels

    steps = _steps(compared)
    x = [float(s) for s in steps] if steps else [float(i + 1) for i in
                                                 range(len(compared.summaries))]
    ticks = [_label(s) for s in compared.summaries]
    panels = [(m.label, [rates[m.name] for rates in compared.comparison.rates]) for m in RATES]
    image = interval_panels(x, ticks, panels, "training step" if steps else "job (in order)",
                            connect=steps is not None)
    note = ("<p>Against the training step: the line follows one training run."
            if steps else "<p>One point per job: the jobs are not steps of one "
            "training run, so no line joins them.") + " Bars: 95% intervals.</p>"
    return section("Metrics across the sweep", note + image, "sweep-metrics")


def heads_section(engine: Engine, compared: Compared) -> str | None:
    titles = [f"{i + 1}: {_label(s)}" for i, s in enumerate(compared.summaries)]
    parts = []
    sources = [(score.heatmap.title, score.name,
                [head_means(engine, s.job_id) for s in compared.summaries])
               for score in HEAD_SCORES if score.heatmap is not None]
    sources.append(("Probe induction score (layer x head)", "induction_score",
                    [probe_head_rows(engine, s.job_id) for s in compared.summaries]))
    for title, score, per_job in sources:
        if any(not rows for rows in per_job) or all(
                row._mapping[score] is None for rows in per_job for row in rows):
            continue
        grids = [head_grid(list(rows), score) for rows in per_job]
        parts.append(small_heatmaps(grids, titles, f"{title}, one panel per job"))
    if not parts:
        return None
    intro = ("<p>Per-head scores of every job, in the sweep's order, on one colour scale "
             "(0 to 1). Across training checkpoints, an induction head forming shows as a "
             "cell lighting up from one panel to the next.</p>")
    return section("Heads across the sweep", intro + "".join(parts), "sweep-heads")


def scatter_section(compared: Compared) -> str | None:
    """For two models: each shared document's loss under the first against the second,
    the diagonal drawn (up to SCATTER_DOCUMENTS points, every k-th document)."""
    from scheduler.report.plots import paired_scatter

    if len(compared.summaries) != 2:
        return None
    loss = next(m for m in RATES if m.name == "loss")
    a, b = (document_rates(job, loss) for job in compared.comparison.jobs)  # [n_shared]
    kept = ~(np.isnan(a) | np.isnan(b))
    a, b = a[kept], b[kept]
    if not len(a):
        return None
    stride = max(1, -(-len(a) // SCATTER_DOCUMENTS))
    names = [f"{_label(s)} ({s.job_id})" for s in compared.summaries]
    image = paired_scatter(a[::stride].tolist(), b[::stride].tolist(),
                           (f"loss under {names[0]}", f"loss under {names[1]}"),
                           "Per-document loss, first model against second")
    shown = "" if stride == 1 else f" ({len(a[::stride]):,} drawn, every {stride}th)"
    body = (f"<p>Each point is one of the {len(a):,} documents both jobs scored{shown}: "
            f"across, its loss under {esc(names[0])}; up, under {esc(names[1])}. "
            f"Under the diagonal: lower loss under the second model "
            f'(<span id="scatter-lower">{int((b < a).sum())}</span> documents); above it: '
            f'lower under the first (<span id="scatter-higher">{int((b > a).sum())}</span>'
            ").</p>")
    return section("Per-document loss, A against B", body + image, "sweep-scatter")


def differences_section(compared: Compared) -> str:
    base = compared.summaries[0]
    rows: list[list[object]] = [
        [s.job_id, s.label, *(difference_text(d[m.name]) for m in RATES)]
        for s, d in zip(compared.summaries[1:], compared.comparison.differences, strict=True)]
    heads: list[list[object]] = [
        [row["job"], f"{row['layer']}.{row['head']}",
         *(num(row[f"{s.name}_difference"], 3) for s in HEAD_SCORES)]
        for row in compared.heads]
    body = (f"<p>Each job minus the first ({esc(base.job_id)}, {esc(base.label)}), on the "
            "same resampled documents; * where the interval excludes 0.</p>"
            + grid_table(["job", "model", *(f"{m.label} difference" for m in RATES)], rows)
            + f"<p class='meta'>Heads whose scores differ most from the first job's "
              f"(top {TOP_HEADS} per job; per-head means over each job's documents):</p>"
            + grid_table(["job", "head", *(f"{s.name} difference" for s in HEAD_SCORES)],
                         heads))
    return section("Differences from the first job", body, "sweep-differences")


def render_sweep(engine: Engine, sweep_id: str) -> str:
    """The sweep's page as one HTML string."""
    compared = gather(engine, [sweep_id], TOP_HEADS)
    body = "".join(part for part in (
        jobs_section(engine, compared), metrics_section(compared),
        scatter_section(compared), heads_section(engine, compared),
        differences_section(compared)) if part)
    return page(f"lensbatch sweep {sweep_id}",
                f"lensbatch report: sweep {sweep_id} · {len(compared.summaries)} jobs", body)
