"""`lensbatch report`: one self-contained HTML page per job, readable offline.

The page is a list of section functions (sections()); each takes the ReportContext and
returns an HTML fragment, or None when it has nothing to show. Images are base64 PNGs
(scheduler/report/plots.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from lensbatch.settings import DEFAULT_CACHE_DIR
from lensbatch.store.queries import job_summary
from lensbatch.store.report_data import job_record
from scheduler.report.heads import HEAD_SECTIONS
from scheduler.report.html import STYLE, ReportContext, Section, esc
from scheduler.report.sections import (
    corpus_section,
    loss_histogram_section,
    loss_vs_length_section,
    model_card_section,
    settings_section,
    top_induction_section,
)


def sections() -> list[Section]:
    """The page, in order. Per-head sections render only where the job has their rows."""
    return [settings_section, model_card_section, corpus_section, *HEAD_SECTIONS,
            loss_histogram_section, loss_vs_length_section, top_induction_section]


def render(engine: Engine, job_id: str, cache_dir: str = DEFAULT_CACHE_DIR) -> str:
    """The whole page as one HTML string."""
    summary = job_summary(engine, job_id)  # raises JobNotFound for a wrong id
    job = job_record(engine, job_id)
    ctx = ReportContext(engine, job_id, summary, job, cache_dir)
    body = "".join(part for part in (fn(ctx) for fn in sections()) if part)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>lensbatch report {esc(job_id)}</title><style>{STYLE}</style></head><body>"
        f"<h1>lensbatch report: job {esc(job_id)} · {esc(job['model'])}</h1>"
        f"<p class='meta'>generated {stamp}</p>{body}</body></html>\n"
    )


def write_report(engine: Engine, job_id: str, output: Path,
                 cache_dir: str = DEFAULT_CACHE_DIR) -> int:
    """Write the page to `output`; return its size in bytes."""
    page = render(engine, job_id, cache_dir)
    output.write_text(page, encoding="utf-8")
    return len(page.encode("utf-8"))
