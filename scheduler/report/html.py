"""The pieces every report section is made of: its context, HTML helpers and the style."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from lensbatch.store.queries import JobSummary
from scheduler.top_output import NeuronRef


@dataclass(frozen=True)
class ReportContext:
    engine: Engine
    job_id: str
    summary: JobSummary
    job: dict[str, Any]  # the jobs row, settings decoded
    cache_dir: str  # for the job's tokenizer (lensbatch.settings.Settings.cache_dir)
    rescore: bool = True  # score the hardest documents again with the job's model
    neurons: tuple[NeuronRef, ...] = ()  # cards asked for with `report --neuron`


# A section takes the context and returns an HTML fragment, or None when it has
# nothing to show (a job without per-head rows has no heatmaps).
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
.tokens { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: .85em;
          line-height: 1.9; border: 1px solid #eee; padding: .6em; max-height: 30em;
          overflow: auto; }
.tok { border-radius: 2px; }
.tok.hit { border-bottom: 3px solid #2a9d3a; }
.tok.novel { border-bottom: 3px solid #1457d9; }
.tok.first { color: #888; }
.legend span { padding: 0 .6em; }
svg { max-width: 100%; height: auto; }
nav.toc { font-size: .9em; } nav.toc a { margin-right: .8em; }
figure.heatmap { margin: .6em 0; display: inline-block; vertical-align: top; }
figure.heatmap figcaption { font-weight: 600; padding-bottom: .2em; }
.heads-row { display: flex; flex-wrap: wrap; gap: 0 2.5em; align-items: flex-start; }
table.heat th { font-size: 12px; font-weight: normal; color: #555; background: none;
                border: none; padding: 0 .3em; text-align: center; }
table.heat th.axis { font-style: italic; white-space: nowrap; }
table.heat td { font-size: 12px; min-width: 3.2em; height: 1.9em; padding: 0 .2em;
                text-align: center; border: 1px solid #fff; }
table.heat.dense td { min-width: 12px; width: 12px; height: 12px; padding: 0; }
table.heat.dense th { font-size: 11px; padding: 0 1px; }
table.heat td.empty { background: #f4f4f4; }
.panels { display: flex; flex-wrap: wrap; gap: 0 1.2em; }
.heat-scale { font-size: 12px; color: #555; }
.heat-scale .bar { display: inline-block; width: 12em; height: .8em; margin: 0 .4em;
                   vertical-align: middle; }
table.acts td.bar { min-width: 6em; }
table.acts td.bar span { display: inline-block; height: .7em; background: #4c72b0; }
.neuron-card { border-top: 1px solid #eee; margin-top: 1em; }
figure.neuron-hist { margin: .4em 0; }
svg.neuron-hist rect { fill: #4c72b0; } svg.neuron-hist rect.neg { fill: #dd8452; }
svg.neuron-hist line { stroke: #999; }
svg.neuron-hist text { font-size: 11px; fill: #555; text-anchor: end;
                       dominant-baseline: middle; }
svg.neuron-hist text.zero { font-weight: bold; }
figure.neuron-hist figcaption { max-width: 50em; }
table.contexts td.ctx { font-family: ui-monospace, monospace; font-size: .85em;
                        white-space: pre-wrap; }
"""


def page(title: str, heading: str, body: str) -> str:
    """A whole self-contained page: the style inline, no script, no external link."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(heading)}</h1><p class='meta'>generated {stamp}</p>{body}</body></html>\n"
    )
