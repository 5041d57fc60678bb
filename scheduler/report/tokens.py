"""The report's hardest documents, token by token: each token shaded by its loss (on a
scale from the drawn tokens' own loss distribution, LossScale), with induction hits
marked, as CircuitsVis colours tokens, in plain HTML and CSS (no script).

The documents are scored again with the job's model and settings (on the CPU), so the
page needs the model where it is written; each document's header gives the stored
numbers next to the sums of what is shown, which match.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from lensbatch.errors import UserError
from lensbatch.jobspec import JobSpec
from lensbatch.store.report_data import hardest_documents
from lensbatch.tokens import PERCENTILES, LossScale, TokenScore, loss_scale, totals
from scheduler.report.html import ReportContext, esc, num, section

HARDEST = 10
MAX_TOKENS = 2048  # tokens drawn per document; the sums still cover the whole document


def token_colour(loss: float | None, scale: LossScale) -> str:
    return f"rgba(214, 39, 40, {0.85 * scale.share(loss):.3f})"


def _title(token: TokenScore) -> str:
    if token.loss is None:
        return "first token: nothing predicts it"
    predicted = "predicted" if token.correct else "not predicted"
    return f"loss {token.loss:.3f} nats, {predicted}, induction: {token.induction}"


def token_spans(tokens: Sequence[TokenScore], scale: LossScale) -> str:
    """One <span> per token: background by loss, class hit or novel for induction hits,
    the loss in data-loss and in the tooltip."""
    out = []
    for token in tokens:
        css = "tok" + (" novel" if token.novel else " hit" if token.hit else "") + (
            " first" if token.loss is None else "")
        loss = "" if token.loss is None else f' data-loss="{token.loss:.6f}"'
        out.append(f'<span class="{css}" style="background: {token_colour(token.loss, scale)}"'
                   f'{loss} title="{html.escape(_title(token))}">'
                   f"{html.escape(token.text)}</span>")
    return "".join(out)


def _legend(scale: LossScale, n_tokens: int) -> str:
    """The colour scale as swatches from `low` to `high`, with where it comes from."""
    steps = np.linspace(scale.low, scale.high, 5).tolist()
    cells = "".join(f'<span style="background: {token_colour(v, scale)}">{v:.2f}</span>'
                    for v in steps)
    low, high = PERCENTILES
    return (f'<p class="legend meta" data-scale-low="{scale.low:.6f}" '
            f'data-scale-high="{scale.high:.6f}">loss in nats: {cells} and above '
            f"(the {low:g}th to {high:g}th percentile of the {n_tokens:,} drawn tokens' "
            "losses; lower is white) · "
            '<span class="tok hit">induction hit</span> · '
            '<span class="tok novel">novel hit</span> (first occurrence predicted wrongly)'
            " · hover a token for its numbers</p>")


def _document(row: Any, tokens: list[TokenScore], scale: LossScale) -> str:
    summed = totals(tokens)
    shown = tokens[:MAX_TOKENS]
    cut = "" if len(shown) == len(tokens) else (
        f" (the first {len(shown)} of {len(tokens)} tokens are drawn)")
    return (
        f"<h3>{esc(row.doc_id)}</h3><p class='meta'>stored: loss {num(row.loss)}, "
        f"{row.n_tokens} tokens, {row.n_correct} correct, {row.induction_hits} induction "
        f"hits of {row.induction_candidates} candidates, nll_sum {num(row.nll_sum)}. "
        f"Shown: nll_sum {num(summed['nll_sum'])} over {int(summed['n_predictions'])} "
        f"predictions, {int(summed['n_correct'])} correct, "
        f"{int(summed['induction_hits'])} hits{cut}.</p>"
        f'<div class="tokens" data-doc="{esc(row.doc_id)}">{token_spans(shown, scale)}</div>')


def hardest_section(ctx: ReportContext) -> str | None:
    """The HARDEST documents by loss, highest first, token by token."""
    from scheduler.rescore import job_ablation, job_model, score_text

    if not ctx.rescore:  # `report --no-tokens`: the model is not loaded
        return section("Hardest documents, token by token",
                       "<p>Not drawn: the report was written with --no-tokens, which "
                       "leaves the job's model unloaded.</p>", "hardest-docs")
    rows = hardest_documents(ctx.engine, ctx.job_id, HARDEST)
    if not rows:
        return None
    intro = (f"<p>The {len(rows)} documents with the highest loss, scored again token by "
             "token with the job's model and settings.</p>")
    try:
        model, spec = job_model(JobSpec.from_json(ctx.job["settings"]), "cpu", ctx.cache_dir)
    except (UserError, OSError) as exc:  # e.g. a hub model that is not cached here
        return section("Hardest documents, token by token",
                       intro + f"<p>The model cannot be loaded here: {esc(exc)}</p>",
                       "hardest-docs")
    ablation = job_ablation(ctx.engine, ctx.job_id, spec, model)
    scored = [score_text(model, row.text, spec, ablation) for row in rows]
    drawn = [t.loss for tokens in scored for t in tokens[:MAX_TOKENS] if t.loss is not None]
    scale = loss_scale(drawn)
    parts = [_document(row, tokens, scale) for row, tokens in zip(rows, scored, strict=True)]
    return section("Hardest documents, token by token",
                   intro + _legend(scale, len(drawn)) + "".join(parts), "hardest-docs")
