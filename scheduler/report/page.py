"""`lensbatch report`: one self-contained HTML page per job, readable offline.

The page is a list of section functions (sections()); each takes the ReportContext and
returns an HTML fragment, or None when it has nothing to show. Images are base64 PNGs
(scheduler/report/plots.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from lensbatch.errors import UserError
from lensbatch.settings import DEFAULT_CACHE_DIR
from lensbatch.store.queries import job_summary
from lensbatch.store.report_data import job_record
from lensbatch.store.sweeps import sweep_jobs
from scheduler.report.activations import activations_section
from scheduler.report.heads import HEAD_SECTIONS
from scheduler.report.html import ReportContext, Section, page
from scheduler.report.neurons import check_requests, neurons_section
from scheduler.report.sections import (
    corpus_section,
    loss_histogram_section,
    loss_vs_length_section,
    model_card_section,
    settings_section,
    top_induction_section,
)
from scheduler.report.sweep import render_sweep
from scheduler.report.tokens import hardest_section
from scheduler.top_output import NeuronRef

SECTION_HEAD = re.compile(r'<section id="([^"]+)"><h2>(.*?)</h2>')


def sections() -> list[Section]:
    """The page, in order: the findings first (corpus numbers with their intervals, the
    top heads, the hardest documents), then the distributions, the activations and the
    neurons, and the model card and settings last. Per-head, activation and neuron
    sections render only where the job has their rows."""
    return [corpus_section, *HEAD_SECTIONS, hardest_section, loss_histogram_section,
            loss_vs_length_section, top_induction_section, activations_section,
            neurons_section, model_card_section, settings_section]


def contents(parts: list[str]) -> str:
    """A line of links to the page's sections, in order."""
    found = (SECTION_HEAD.match(part) for part in parts)
    links = " ".join(f'<a href="#{m.group(1)}">{m.group(2)}</a>' for m in found if m)
    return f'<nav class="toc">{links}</nav>'


def render(engine: Engine, job_id: str, cache_dir: str = DEFAULT_CACHE_DIR,
           rescore: bool = True, neurons: Sequence[NeuronRef] = ()) -> str:
    """The whole page as one HTML string; rescore: draw the hardest documents token by
    token (loads the job's model); neurons: cards to add to the Neurons section (a
    neuron the job did not record is refused, UserError, before anything is drawn)."""
    summary = job_summary(engine, job_id)  # raises JobNotFound for a wrong id
    check_requests(engine, job_id, neurons)
    job = job_record(engine, job_id)
    ctx = ReportContext(engine, job_id, summary, job, cache_dir, rescore, tuple(neurons))
    parts = [part for part in (fn(ctx) for fn in sections()) if part]
    return page(f"lensbatch report {job_id}",
                f"lensbatch report: job {job_id} · {summary.label}",
                contents(parts) + "".join(parts))


def write_report(engine: Engine, report_id: str, output: Path,
                 cache_dir: str = DEFAULT_CACHE_DIR, rescore: bool = True,
                 neurons: Sequence[NeuronRef] = ()) -> int:
    """Write the page of a job, or of a sweep (scheduler/report/sweep.py), to `output`;
    return its size in bytes. Nothing is written when the page cannot be drawn."""
    if sweep_jobs(engine, report_id):
        if neurons:
            raise UserError(f"--neuron shows a job's neurons; {report_id} is a sweep "
                            "(report one of its jobs with --neuron)")
        text = render_sweep(engine, report_id)
    else:
        text = render(engine, report_id, cache_dir, rescore, neurons)
    output.write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))
