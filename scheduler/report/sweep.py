"""`lensbatch report SWEEP`: one self-contained page for a sweep's jobs, in order.

Each rate across the models with its 95% interval (against the training step where
every job has one), the per-head scores of every job as small multiples on one colour
scale (the documents' means, and the repeated-tokens probe's induction score: where
induction heads form across checkpoints), and the paired differences from the first
model. Every number comes from lensbatch/compare.py over the documents all jobs share.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from lensbatch.compare import RATES
from lensbatch.metrics import HEAD_SCORES
from lensbatch.store.queries import JobSummary, head_means, job_probe, probe_head_rows
from scheduler.compare_view import Compared, gather, shared_line
from scheduler.output import INTERVAL_NOTE, difference_text, interval_text
from scheduler.report.heads import head_grid
from scheduler.report.html import esc, grid_table, num, page, section

TOP_HEADS = 3  # head differences listed per job


def _label(summary: JobSummary) -> str:
    """How a job is named on the axis: its step, or its model's short name."""
    if summary.sweep is not None and summary.sweep.step is not None:
        return f"step {summary.sweep.step}"
    return Path(summary.model.rstrip("/")).name or summary.model


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
            summary.model, summary.status, f"{summary.n_done} / {summary.n_documents}",
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
    image = interval_panels(x, ticks, panels, "training step" if steps else "model (in order)")
    return section("Metrics across the sweep", image, "sweep-metrics")


def heads_section(engine: Engine, compared: Compared) -> str | None:
    from scheduler.report.plots import small_heatmaps

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


def differences_section(compared: Compared) -> str:
    base = compared.summaries[0]
    rows: list[list[object]] = [
        [s.job_id, s.model, *(difference_text(d[m.name]) for m in RATES)]
        for s, d in zip(compared.summaries[1:], compared.comparison.differences, strict=True)]
    heads: list[list[object]] = [
        [row["job"], f"{row['layer']}.{row['head']}",
         *(num(row[f"{s.name}_difference"], 3) for s in HEAD_SCORES)]
        for row in compared.heads]
    body = (f"<p>Each job minus the first ({esc(base.job_id)}, {esc(base.model)}), on the "
            "same resampled documents; * where the interval excludes 0.</p>"
            + grid_table(["job", "model", *(f"{m.label} difference" for m in RATES)], rows)
            + f"<p class='meta'>Heads whose scores differ most from the first job's "
              f"(top {TOP_HEADS} per job; per-head means over each job's documents):</p>"
            + grid_table(["job", "head", *(f"{s.name} difference" for s in HEAD_SCORES)],
                         heads))
    return section("Differences from the first model", body, "sweep-differences")


def render_sweep(engine: Engine, sweep_id: str) -> str:
    """The sweep's page as one HTML string."""
    compared = gather(engine, [sweep_id], TOP_HEADS)
    body = "".join(part for part in (
        jobs_section(engine, compared), metrics_section(compared),
        heads_section(engine, compared), differences_section(compared)) if part)
    return page(f"lensbatch sweep {sweep_id}",
                f"lensbatch report: sweep {sweep_id} · {len(compared.summaries)} models", body)
