"""`lensbatch report`: one self-contained HTML page per job, readable offline.

The page is a list of section functions (SECTIONS). Each takes the ReportContext and
returns an HTML fragment, or None when it has nothing to show (for example a per-head
table that an older database does not have). Images are base64 PNGs (scheduler/plots).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from lensbatch import schema
from scheduler.queries import JobSummary, job_summary
from scheduler.report_text import Hit, highlight, load_tokenizer, token_spans

TOP_DOCUMENTS = 5
EXCERPT_CHARS = 1500


@dataclass(frozen=True)
class ReportContext:
    engine: Engine
    job_id: str
    summary: JobSummary
    job: dict[str, Any]  # the jobs row


Section = Callable[[ReportContext], str | None]


def esc(value: object) -> str:
    return html.escape("-" if value is None else str(value))


def num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def kv_table(rows: list[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def grid_table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table class="grid"><tr>{head}</tr>{body}</table>'


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def settings_section(ctx: ReportContext) -> str:
    job = ctx.job
    settings = job["settings"] if isinstance(job["settings"], dict) else {}
    rows: list[tuple[str, object]] = [
        ("job", job["id"]), ("model", job["model"]), ("status", job["status"]),
        ("corpus", job["corpus"]), ("documents", job["n_documents"]),
        ("tasks", job["n_tasks"]), ("created", job["created_at"]),
        ("started", job["started_at"]), ("finished", job["finished_at"]),
    ]
    # An option left unset (None) is chosen by each worker, e.g. batch_tokens by device.
    rows += [(f"setting: {k}", "worker default" if v is None else v)
             for k, v in sorted(settings.items())]
    if job["error"]:
        rows.append(("error", job["error"]))
    return section("Job settings", kv_table(rows), "settings")


def model_card_section(ctx: ReportContext) -> str:
    with ctx.engine.connect() as connection:
        card = connection.execute(
            select(schema.models).where(schema.models.c.name == ctx.job["model"])
        ).first()
    if card is None:
        body = (f"<p>No model card recorded for <code>{esc(ctx.job['model'])}</code> "
                "(workers record it when they load a model); the job settings above say "
                "how it was run.</p>")
        return section("Model card", body, "model")
    cfg = card.config or {}
    keys = ("n_layers", "n_heads", "d_model", "d_head", "d_mlp", "n_ctx", "d_vocab", "act_fn",
            "normalization_type", "positional_embedding_type")
    rows: list[tuple[str, object]] = [("name", card.name), ("source", card.source)]
    rows += [(k, cfg[k]) for k in keys if k in cfg]
    rows += [(f"shape {k}", " x ".join(map(str, v))) for k, v in sorted(card.weight_shapes.items())]
    return section("Model card", kv_table(rows), "model")


def corpus_section(ctx: ReportContext) -> str:
    s = ctx.summary
    rows: list[tuple[str, object]] = [
        ("documents evaluated", f"{s.n_done} / {s.n_documents}"),
        ("tokens", s.n_tokens), ("predictions", s.n_predictions),
        ("loss (token-weighted, nats)", num(s.loss)), ("accuracy", num(s.accuracy)),
        ("induction candidates", s.induction_candidates),
        ("induction hits", s.induction_hits),
        ("induction hit rate", num(s.induction_hit_rate)),
    ]
    return section("Corpus-level numbers", kv_table(rows), "corpus")


def _doc_rows(ctx: ReportContext) -> list[Any]:
    r, jd, d = schema.results, schema.job_documents, schema.documents
    query = (select(r.c.seq, r.c.loss, r.c.n_tokens, r.c.induction_hits,
                    r.c.induction_candidates, r.c.induction_novel_hits, jd.c.doc_id,
                    jd.c.source, d.c.n_chars)
             .join(jd, (jd.c.job_id == r.c.job_id) & (jd.c.seq == r.c.seq))
             .join(d, d.c.id == jd.c.document_id)
             .where(r.c.job_id == ctx.job_id).order_by(r.c.seq))
    with ctx.engine.connect() as connection:
        return list(connection.execute(query))


def loss_histogram_section(ctx: ReportContext) -> str | None:
    from scheduler.plots import histogram

    losses = [row.loss for row in _doc_rows(ctx) if row.loss is not None]
    if not losses:
        return None
    image = histogram(losses, "loss (nats per token)", "Per-document loss")
    return section("Per-document loss", image, "loss-histogram")


def loss_vs_length_section(ctx: ReportContext) -> str | None:
    from scheduler.plots import scatter

    rows = [row for row in _doc_rows(ctx) if row.loss is not None]
    if not rows:
        return None
    image = scatter([row.n_tokens for row in rows], [row.loss for row in rows],
                    ("document length (tokens, log scale)", "loss (nats per token)"),
                    "Loss against document length")
    return section("Loss against document length", image, "loss-length")


def _hit_tokens(ctx: ReportContext, seq: int) -> list[Hit]:
    table = schema.induction_hit_tokens
    with ctx.engine.connect() as connection:
        rows = connection.execute(
            select(table.c.position, table.c.token, table.c.novel)
            .where(table.c.job_id == ctx.job_id, table.c.seq == seq)
            .order_by(table.c.position)
        ).all()
    return [Hit(int(row.position), str(row.token), bool(row.novel)) for row in rows]


def top_induction_section(ctx: ReportContext) -> str | None:
    rows = sorted((row for row in _doc_rows(ctx) if row.induction_hits > 0),
                  key=lambda row: (-row.induction_hits, row.seq))[:TOP_DOCUMENTS]
    if not rows:
        return section("Documents with the most induction hits",
                       "<p>No induction hits in this job.</p>", "induction-docs")
    d, jd = schema.documents, schema.job_documents
    tokenizer = load_tokenizer(ctx.job["model"])
    bos = bool(ctx.job["settings"].get("prepend_bos", True))
    parts = ['<p>Marked tokens were predicted correctly on a repeated bigram '
             '(<mark>hit</mark>, <mark class="novel">novel hit</mark>: first occurrence '
             'predicted wrongly).</p>']
    for row in rows:
        with ctx.engine.connect() as connection:
            text = connection.scalar(
                select(d.c.text).join(jd, jd.c.document_id == d.c.id)
                .where(jd.c.job_id == ctx.job_id, jd.c.seq == row.seq))
        hits = _hit_tokens(ctx, row.seq)
        excerpt = str(text)
        if hits is None:
            body = html.escape(excerpt[:EXCERPT_CHARS])
            note = " (hit tokens are not recorded in this database)"
        else:
            body = highlight(excerpt, hits, token_spans(tokenizer, excerpt), bos)
            note = f" ({len(hits)} hit tokens recorded)"
        parts.append(
            f"<h3>{esc(row.doc_id)}</h3><p class='meta'>{row.induction_hits} hits of "
            f"{row.induction_candidates} candidates, {row.induction_novel_hits} novel, "
            f"loss {num(row.loss)}, source {esc(row.source)}{esc(note)}</p>"
            f'<div class="doc">{body}</div>')
    return section("Documents with the most induction hits", "".join(parts), "induction-docs")


def _head_sections() -> list[Section]:
    from scheduler.report_heads import HEAD_SECTIONS

    return list(HEAD_SECTIONS)


def sections() -> list[Section]:
    """The page, in order. Per-head sections render only where the job has their rows."""
    return [settings_section, model_card_section, corpus_section, *_head_sections(),
            loss_histogram_section, loss_vs_length_section, top_induction_section]


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left;
         font-variant-numeric: tabular-nums; }
table.kv th { background: #f4f4f4; font-weight: 600; }
table.grid th { background: #f4f4f4; }
img { max-width: 100%; }
.doc { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: .85em;
       background: #fafafa; border: 1px solid #eee; padding: .8em; max-height: 24em;
       overflow: auto; }
mark { background: #ffe08a; } mark.novel { background: #9be3a5; }
.meta { color: #666; font-size: .9em; }
"""


def render(engine: Engine, job_id: str) -> str:
    """The whole page as one HTML string."""
    summary = job_summary(engine, job_id)  # raises JobNotFound for a wrong id
    with engine.connect() as connection:
        job = dict(connection.execute(
            select(schema.jobs).where(schema.jobs.c.id == job_id)).one()._mapping)
    if isinstance(job["settings"], str):
        job["settings"] = json.loads(job["settings"])
    ctx = ReportContext(engine, job_id, summary, job)
    body = "".join(part for part in (fn(ctx) for fn in sections()) if part)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>lensbatch report {esc(job_id)}</title><style>{STYLE}</style></head><body>"
        f"<h1>lensbatch report: job {esc(job_id)} · {esc(job['model'])}</h1>"
        f"<p class='meta'>generated {stamp}</p>{body}</body></html>\n"
    )


def write_report(engine: Engine, job_id: str, output: Path) -> int:
    """Write the page to `output`; return its size in bytes."""
    page = render(engine, job_id)
    output.write_text(page, encoding="utf-8")
    return len(page.encode("utf-8"))
