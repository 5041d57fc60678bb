"""The report's Neurons section, for a job run with --top-activations: per hook (and
layer) its neurons with the highest activation as a table, and a card for the first
CARDS of them and for every neuron asked for with `report --neuron HOOK:NEURON`: the
neuron's histogram (scheduler/report/neuron_histogram.py) and its K contexts, the
max-activating token marked in a window of text, as `lensbatch top` prints them
(scheduler/top_output.py cut)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from lensbatch.errors import UserError
from lensbatch.store import report_data
from lensbatch.store.top_queries import NeuronRow, NeuronTop, neuron_counts, neuron_rows, neuron_top
from scheduler.report.html import ReportContext, esc, num, section
from scheduler.report.neuron_histogram import histogram_figure
from scheduler.report.text import Span, load_tokenizer, token_spans
from scheduler.top_output import DEFAULT_WINDOW, NeuronRef, cut, neuron_label, parse_neuron

TABLE_ROWS = 10  # neurons listed per hook
CARDS = 3  # of those, the first with a card: GPT-2 small's 12 MLP layers make 36 cards


def parse_request(value: str) -> NeuronRef:
    """HOOK:NEURON, HOOK and NEURON as `lensbatch top` takes them (hook_embed:3,
    z0:1.3, blocks.1.mlp.hook_post:17); neither has a colon of its own."""
    from lensbatch.hooks import one_hook

    hook, colon, neuron = value.rpartition(":")
    if not colon or not hook or not neuron:
        raise UserError(f"--neuron takes HOOK:NEURON (hook_embed:3, z0:1.3 for head 1, "
                        f"index 3), got {value!r}")
    try:
        head, index = parse_neuron(neuron)
        return NeuronRef(one_hook(hook), head, index)
    except UserError as exc:
        raise UserError(f"--neuron {value}: {exc}") from None


def check_requests(engine: Engine, job_id: str, requests: Sequence[NeuronRef]) -> None:
    """Refuse (UserError, one line) a neuron the job did not record, before any page is
    drawn: a job without top activations, a hook it did not keep, an index past the end."""
    if requests and not neuron_counts(engine, job_id):
        raise UserError(f"job {job_id} kept no top activations, so --neuron has nothing "
                        "to show (run it with --top-activations HOOKS)")
    for request in requests:
        try:
            neuron_top(engine, job_id, request.hook, request.neuron, request.head)
        except UserError as exc:
            raise UserError(f"--neuron {request.hook}:{request.label}: {exc}") from None


class Texts:
    """Each document's token spans, tokenized once for all the cards that show it."""

    def __init__(self, tokenizer: Any | None) -> None:
        self.tokenizer = tokenizer
        self.spans: dict[int, list[Span] | None] = {}

    def of(self, seq: int, text: str) -> list[Span] | None:
        if seq not in self.spans:
            self.spans[seq] = token_spans(self.tokenizer, text)
        return self.spans[seq]


def _density(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _anchor(hook: str, label: str) -> str:
    return "neuron-" + re.sub(r"[^A-Za-z0-9_-]", "-", f"{hook}-{label}")


def neuron_table(rows: list[NeuronRow], carded: set[str], hook: str) -> str:
    """The hook's top neurons; a neuron with a card links to it."""
    body = []
    for rank, row in enumerate(rows, start=1):
        label = neuron_label(row.head, row.neuron)
        shown = (f'<a href="#{_anchor(hook, label)}">{esc(label)}</a>' if label in carded
                 else esc(label))
        body.append(f'<tr data-neuron="{esc(label)}"><td>{rank}</td><td>{shown}</td>'
                    f"<td>{num(row.max_value)}</td><td>{_density(row.density)}</td>"
                    f"<td>{row.n_positions:,}</td></tr>")
    name = "neuron (HEAD.INDEX)" if any(row.head is not None for row in rows) else "neuron"
    return (f'<table class="grid neurons"><tr><th>rank</th><th>{name}</th><th>max</th>'
            "<th>density (above zero)</th><th>positions</th></tr>" + "".join(body)
            + "</table>")


def context_table(found: NeuronTop, texts: Texts, bos: bool) -> str:
    """One row per context, best first: rank, value, document @ position, the text."""
    rows = []
    for context in found.contexts:
        shown = cut(context, texts.of(context.seq, context.text), bos, DEFAULT_WINDOW)
        text = (f"{esc(shown.before)}<mark>{esc(shown.token)}</mark>{esc(shown.after)}"
                if shown.token else '<span class="meta">(no tokenizer here)</span>')
        rows.append(f'<tr data-doc="{esc(context.doc_id)}" data-position="{context.position}">'
                    f"<td>{context.rank}</td><td>{context.value:.4f}</td>"
                    f"<td>{esc(context.doc_id)} @{context.position}</td>"
                    f'<td class="ctx">{text}</td></tr>')
    return ('<table class="grid contexts"><tr><th>rank</th><th>value</th><th>document '
            "@ position</th><th>context</th></tr>" + "".join(rows) + "</table>")


def neuron_card(found: NeuronTop, texts: Texts, bos: bool, asked: bool) -> str:
    label = neuron_label(found.head, found.neuron)
    name = label if found.head is None else f"{label} (head {found.head}, index {found.neuron})"
    top = found.contexts[0].value if found.contexts else None
    why = " · asked for with --neuron" if asked else ""
    return (f'<div class="neuron-card" id="{_anchor(found.hook, label)}" '
            f'data-hook="{esc(found.hook)}" data-neuron="{esc(label)}">'
            f"<h4>{esc(found.hook)} neuron {esc(name)}</h4>"
            f"<p class='meta'>max {num(top)}, density (above zero) "
            f"{_density(found.density)}, {found.n_positions:,} positions{why}</p>"
            f"{histogram_figure(found.histogram, found.edges)}"
            f"{context_table(found, texts, bos)}</div>")


def hook_part(ctx: ReportContext, hook: str, size: int, texts: Texts, bos: bool) -> str:
    """One hook: its table, then the cards of its first CARDS neurons and of the
    neurons asked for on it (each once)."""
    rows = neuron_rows(ctx.engine, ctx.job_id, hook, TABLE_ROWS)
    cards = [(row.head, row.neuron) for row in rows[:CARDS]]
    asked = [(r.head, r.neuron) for r in ctx.neurons if r.hook == hook]
    cards = list(dict.fromkeys(cards + asked))  # a neuron asked for twice: one card
    carded = {neuron_label(head, neuron) for head, neuron in cards}
    drawn = [neuron_card(neuron_top(ctx.engine, ctx.job_id, hook, neuron, head), texts, bos,
                         (head, neuron) in asked) for head, neuron in cards]
    extra = len(cards) - min(CARDS, len(rows))
    more = f", then {extra} asked for with --neuron" if extra else ""
    return (f'<div class="neuron-hook" data-hook="{esc(hook)}"><h3>{esc(hook)}</h3>'
            f"<p class='meta'>{size:,} neurons; the {len(rows)} with the highest "
            f"activation, and the cards of the first {min(CARDS, len(rows))}{more}.</p>"
            f"{neuron_table(rows, carded, hook)}{''.join(drawn)}</div>")


def neurons_section(ctx: ReportContext) -> str | None:
    sizes = neuron_counts(ctx.engine, ctx.job_id)
    if not sizes:
        return None
    k = ctx.job["settings"].get("top_k") if isinstance(ctx.job["settings"], dict) else None
    bos = report_data.prepends_bos(ctx.engine, ctx.job["model"], ctx.job["settings"])
    texts = Texts(load_tokenizer(ctx.job["model"], ctx.cache_dir))
    intro = (f"<p>The job kept each neuron's {esc(k)} highest activations over the corpus "
             "(--top-activations, --top-k), with a histogram of all its activations. "
             "Density is the share of a neuron's activations above zero. In each context "
             f"the max-activating token is <mark>marked</mark>, with {DEFAULT_WINDOW} "
             "tokens either side (↵ is a line break). <code>lensbatch top JOB HOOK "
             "NEURON</code> prints the same; <code>report --neuron HOOK:NEURON</code> adds "
             "a card.</p>")
    if texts.tokenizer is None:
        intro += ("<p class='meta'>The job's tokenizer is not available here, so the "
                  "contexts' text is not shown (the documents and positions are).</p>")
    parts = [hook_part(ctx, hook, size, texts, bos) for hook, size in sizes.items()]
    return section("Neurons", intro + "".join(parts), "neurons")
