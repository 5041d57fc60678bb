"""The report's hardest documents, token by token: each token shaded by its loss, with
induction hits marked, as CircuitsVis colours tokens, in plain HTML and CSS (no script).

The documents are scored again with the job's model and settings (on the CPU), so the
page needs the model where it is written; each document's header gives the stored
numbers next to the sums of what is shown, which match.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from lensbatch.errors import UserError
from lensbatch.jobspec import JobSpec
from lensbatch.store.report_data import hardest_documents
from lensbatch.tokens import TokenScore, totals
from scheduler.report.html import ReportContext, esc, num, section
from scheduler.token_output import LOSS_SCALE, loss_share

HARDEST = 10
MAX_TOKENS = 2048  # tokens drawn per document; the sums still cover the whole document



def token_colour(loss: float | None) -> str:
    """White at 0 nats, strong red at LOSS_SCALE nats and above."""
    return f"rgba(214, 39, 40, {0.85 * loss_share(loss):.3f})"


def _title(token: TokenScore) -> str:
    if token.loss is None:
        return "first token: nothing predicts it"
    predicted = "predicted" if token.correct else "not predicted"
    return f"loss {token.loss:.3f} nats, {predicted}, induction: {token.induction}"


def token_spans(tokens: Sequence[TokenScore]) -> str:
    """One <span> per token: background by loss, class hit or novel for induction hits,
    the loss in data-loss and in the tooltip."""
    out = []
    for token in tokens:
        css = "tok" + (" novel" if token.novel else " hit" if token.hit else "") + (
            " first" if token.loss is None else "")
        loss = "" if token.loss is None else f' data-loss="{token.loss:.6f}"'
        out.append(f'<span class="{css}" style="background: {token_colour(token.loss)}"'
                   f'{loss} title="{html.escape(_title(token))}">'
                   f"{html.escape(token.text)}</span>")
    return "".join(out)


def _legend() -> str:
    steps = [0.0, 2.5, 5.0, 7.5, LOSS_SCALE]
    cells = "".join(f'<span style="background: {token_colour(v)}">{v:g}</span>' for v in steps)
    return (f"<p class='legend meta'>loss in nats: {cells} and above · "
            '<span class="tok hit">induction hit</span> · '
            '<span class="tok novel">novel hit</span> (first occurrence predicted wrongly)'
            " · hover a token for its numbers</p>")


def _document(row: Any, tokens: list[TokenScore]) -> str:
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
        f'<div class="tokens" data-doc="{esc(row.doc_id)}">{token_spans(shown)}</div>')


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
             "token with the job's model and settings.</p>" + _legend())
    try:
        model, spec = job_model(JobSpec.from_json(ctx.job["settings"]), "cpu", ctx.cache_dir)
    except (UserError, OSError) as exc:  # e.g. a hub model that is not cached here
        return section("Hardest documents, token by token",
                       intro + f"<p>The model cannot be loaded here: {esc(exc)}</p>",
                       "hardest-docs")
    ablation = job_ablation(ctx.engine, ctx.job_id, spec, model)
    parts = [_document(row, score_text(model, row.text, spec, ablation)) for row in rows]
    return section("Hardest documents, token by token", intro + "".join(parts),
                   "hardest-docs")
