"""The report's sections about the job itself: corpus numbers, per-document loss, the
documents with the most induction hits, and (at the end) model card and settings, each
fact shown once."""

from __future__ import annotations

from lensbatch.metrics import DOC_METRICS
from lensbatch.store import report_data
from scheduler.model_card import architecture_rows
from scheduler.report.html import ReportContext, esc, kv_table, num, section
from scheduler.report.text import highlight, hits_at, load_tokenizer, token_spans

TOP_DOCUMENTS = 5
MODEL_CARD_KEYS = ("n_layers", "n_heads", "d_model", "d_head", "d_mlp", "n_ctx", "d_vocab",
                   "act_fn", "normalization_type", "positional_embedding_type")
# Config keys that the card's architecture rows say again in words (Norm, Positional
# scheme): shown only for a card recorded without those rows.
SAID_BY_ARCHITECTURE = ("normalization_type", "positional_embedding_type")
# The jobs row's columns the settings table shows before the job's settings; a setting
# of the same name (model) is not repeated.
JOB_COLUMNS = ("id", "model", "status", "corpus", "n_documents", "n_tasks", "created_at",
               "started_at", "finished_at")


def settings_section(ctx: ReportContext) -> str:
    job = ctx.job
    settings = job["settings"] if isinstance(job["settings"], dict) else {}
    labels = dict(zip(JOB_COLUMNS, ("job", "model", "status", "corpus", "documents",
                                    "tasks", "created", "started", "finished"), strict=True))
    rows: list[tuple[str, object]] = [(labels[k], job[k]) for k in JOB_COLUMNS]
    # An option left unset (None) is chosen by each worker, e.g. batch_tokens by device.
    rows += [(f"setting: {k}", "worker default" if v is None else v)
             for k, v in sorted(settings.items()) if k not in JOB_COLUMNS]
    if job["error"]:
        rows.append(("error", job["error"]))
    return section("Job settings", kv_table(rows), "settings")


def model_card_section(ctx: ReportContext) -> str:
    card = report_data.model_card(ctx.engine, ctx.job["model"])
    if card is None:
        body = (f"<p>No model card recorded for <code>{esc(ctx.job['model'])}</code> "
                "(workers record it when they load a model); the job settings below say "
                "how it was run.</p>")
        return section("Model card", body, "model")
    cfg = card.config or {}
    architecture = architecture_rows(cfg)
    skipped = SAID_BY_ARCHITECTURE if architecture else ()
    rows: list[tuple[str, object]] = [("name", card.name), ("source", card.source)]
    rows += [(k, cfg[k]) for k in MODEL_CARD_KEYS if k in cfg and k not in skipped]
    rows += architecture
    rows += [(f"shape {k}", " x ".join(map(str, v))) for k, v in sorted(card.weight_shapes.items())]
    return section("Model card", kv_table(rows), "model")


def corpus_section(ctx: ReportContext) -> str:
    """Every metric of the registry, as a corpus number; rates with their intervals."""
    from scheduler.compare_view import job_intervals
    from scheduler.output import interval_note, interval_text

    s = ctx.summary
    intervals = job_intervals(ctx.engine, ctx.summary)
    rows: list[tuple[str, object]] = [("documents evaluated", f"{s.n_done} / {s.n_documents}")]
    for metric in DOC_METRICS:
        value = s.value(metric.name)
        if metric.name in intervals:
            shown: object = interval_text(intervals[metric.name])
        else:
            shown = int(value) if metric.kind == "count" and value is not None else num(value)
        rows.append((metric.label, shown))
    note = f"<p class='meta'>{esc(interval_note(s.n_done))}.</p>"
    return section("Corpus-level numbers", kv_table(rows) + note, "corpus")


def loss_histogram_section(ctx: ReportContext) -> str | None:
    from scheduler.report.plots import histogram

    counted = report_data.loss_histogram(ctx.engine, ctx.job_id)
    if counted is None:
        return None
    image = histogram(counted.edges, counted.counts, "loss (nats per token)",
                      "Per-document loss")
    return section("Per-document loss", image, "loss-histogram")


def loss_vs_length_section(ctx: ReportContext) -> str | None:
    from scheduler.report.plots import scatter

    rows = [row for row in report_data.sample_rows(ctx.engine, ctx.job_id)
            if row.loss is not None]
    if not rows:
        return None
    title = "Loss against document length"
    if ctx.summary.n_done > len(rows):
        title += f" ({len(rows):,} of {ctx.summary.n_done:,} documents, by seq stride)"
    image = scatter([row.n_tokens for row in rows], [row.loss for row in rows],
                    ("document length (tokens, log scale)", "loss (nats per token)"), title)
    return section("Loss against document length", image, "loss-length")


def top_induction_section(ctx: ReportContext) -> str | None:
    rows = report_data.top_induction_rows(ctx.engine, ctx.job_id, TOP_DOCUMENTS)
    if not rows:
        return section("Documents with the most induction hits",
                       "<p>No induction hits in this job.</p>", "induction-docs")
    tokenizer = load_tokenizer(ctx.job["model"], ctx.cache_dir)
    bos = report_data.prepends_bos(ctx.engine, ctx.job["model"], ctx.job["settings"])
    parts = ['<p>Marked tokens were predicted correctly on a repeated bigram '
             '(<mark>hit</mark>, <mark class="novel">novel hit</mark>: first occurrence '
             'predicted wrongly).</p>']
    if tokenizer is None:
        parts.append("<p class='meta'>The job's tokenizer is not available here, so the "
                     "hit tokens (stored as positions) are not marked.</p>")
    for row in rows:
        text = report_data.document_text(ctx.engine, ctx.job_id, row.seq)
        spans = token_spans(tokenizer, text)
        stored = report_data.hit_positions(ctx.engine, ctx.job_id, row.seq)
        hits = hits_at(text, stored, spans, bos)
        body = highlight(text, hits, spans, bos)
        parts.append(
            f"<h3>{esc(row.doc_id)}</h3><p class='meta'>{row.induction_hits} hits of "
            f"{row.induction_candidates} candidates, {row.induction_novel_hits} novel, "
            f"loss {num(row.loss)}, source {esc(row.source)} ({len(stored)} hit tokens "
            f"recorded)</p>"
            f'<div class="doc">{body}</div>')
    return section("Documents with the most induction hits", "".join(parts), "induction-docs")
