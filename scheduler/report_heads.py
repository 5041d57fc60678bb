"""Report sections for per-head scores: layer x head heatmaps and the repeated-tokens probe.

They read head_scores (job_id, seq, layer, head, prev_token_score, induction_score,
attn_entropy, bos_attention), probes (job_id, model, n_tokens, first_copy_loss,
second_copy_loss, created_at) and probe_heads (job_id, layer, head, induction_score,
prev_token_score). A section whose job has no rows returns None, so the report leaves
it out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import func, select

from lensbatch import schema
from scheduler.report import ReportContext, Section, grid_table, num, section

TOP_HEADS = 8


def head_grid(rows: list[Any], score: str) -> np.ndarray:
    """[n_layers, n_heads] from rows with layer, head and `score`; NaN where missing."""
    n_layers = max(row.layer for row in rows) + 1
    n_heads = max(row.head for row in rows) + 1
    grid = np.full((n_layers, n_heads), np.nan)
    for row in rows:
        value = getattr(row, score)
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


def _corpus_head_means(ctx: ReportContext) -> list[Any]:
    """Per (layer, head): scores averaged over the job's documents."""
    h = schema.head_scores
    query = (select(h.c.layer, h.c.head,
                    func.avg(h.c.induction_score).label("induction_score"),
                    func.avg(h.c.prev_token_score).label("prev_token_score"),
                    func.count().label("n_documents"))
             .where(h.c.job_id == ctx.job_id).group_by(h.c.layer, h.c.head))
    with ctx.engine.connect() as connection:
        return list(connection.execute(query))


def _heatmap_block(rows: list[Any], score: str, title: str) -> str:
    from scheduler.plots import heatmap

    grid = head_grid(rows, score)
    table = grid_table(["head", "score"], [[name, num(value, 3)] for name, value
                                           in top_heads(grid)])
    return f"{heatmap(grid, title)}<p class='meta'>Top heads (layer.head):</p>{table}"


def induction_heatmap_section(ctx: ReportContext) -> str | None:
    rows = _corpus_head_means(ctx)
    if not rows or all(row.induction_score is None for row in rows):
        return None
    intro = ("<p>Mean attention from each token to the token after the previous "
             "occurrence of the current token, over the corpus (documents without a "
             "repeated token are left out). Induction heads score near 1.</p>")
    body = intro + _heatmap_block(rows, "induction_score", "Induction score (layer x head)")
    return section("Induction heads", body, "induction-heads")


def prev_token_heatmap_section(ctx: ReportContext) -> str | None:
    rows = _corpus_head_means(ctx)
    if not rows:
        return None
    intro = ("<p>Mean attention from each token to the token just before it, over the "
             "corpus. Previous-token heads score near 1.</p>")
    body = intro + _heatmap_block(rows, "prev_token_score",
                                  "Previous-token score (layer x head)")
    return section("Previous-token heads", body, "prev-token-heads")


def probe_section(ctx: ReportContext) -> str | None:
    from scheduler.plots import bars

    probes, heads = schema.probes, schema.probe_heads
    with ctx.engine.connect() as connection:
        probe = connection.execute(select(probes).where(probes.c.job_id == ctx.job_id)).first()
        rows = list(connection.execute(select(heads).where(heads.c.job_id == ctx.job_id)))
    if probe is None:
        return None
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


HEAD_SECTIONS: tuple[Section, ...] = (induction_heatmap_section, prev_token_heatmap_section,
                                      probe_section)
