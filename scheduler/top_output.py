"""A neuron's top contexts as text: the max-activating token marked inside a window of
the tokens around it.

The stored position is a token position in the evaluated sequence (BOS included when
prepended); the document is re-tokenized with the job's tokenizer to find that token's
characters (scheduler/report/text.py token_spans). Without a tokenizer the context is
left empty and the token unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.markup import escape

from lensbatch.errors import UserError
from lensbatch.store.top_queries import Context
from scheduler.report.text import Span

DEFAULT_WINDOW = 8  # tokens either side of the marked one


@dataclass(frozen=True)
class Shown:
    """One context cut for display: text before, the token, text after."""

    before: str
    token: str
    after: str

    def plain(self) -> str:
        return f"{self.before}[[{self.token}]]{self.after}"

    def markup(self) -> str:
        return (f"{escape(self.before)}[bold reverse]{escape(self.token)}[/bold reverse]"
                f"{escape(self.after)}")


def parse_neuron(value: str) -> tuple[int | None, int]:
    """A neuron as `top` takes it: INDEX, or HEAD.INDEX for a hook with heads -> (head
    or None, index)."""
    head, _, index = value.strip().rpartition(".")
    try:
        return (int(head) if head else None), int(index)
    except ValueError:
        raise UserError(f"neuron must be INDEX or HEAD.INDEX, got {value!r}") from None


def neuron_label(head: int | None, neuron: int) -> str:
    """The neuron as `top` takes it and `neurons` lists it: 17, or 2.5 (head 2, index 5)."""
    return str(neuron) if head is None else f"{head}.{neuron}"


@dataclass(frozen=True)
class NeuronRef:
    """One neuron of a hook, as `report --neuron` names it."""

    hook: str  # the full name, as stored
    head: int | None
    neuron: int

    @property
    def label(self) -> str:
        return neuron_label(self.head, self.neuron)


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", "\u21b5")


def cut(context: Context, spans: list[Span] | None, bos: bool, window: int) -> Shown:
    """The token at the context's position, and `window` tokens either side."""
    index = context.position - (1 if bos else 0)
    if spans is None or index >= len(spans):  # no tokenizer here: no text
        return Shown("", "", "")
    if index < 0:  # BOS itself: the text that follows it
        return Shown("", "<bos>", _one_line(context.text[:spans[window - 1][1]]
                                            if len(spans) >= window else context.text))
    start, end = spans[index]
    first = spans[max(index - window, 0)][0]
    last = spans[min(index + window, len(spans) - 1)][1]
    text = context.text
    return Shown(_one_line(text[first:start]), _one_line(text[start:end]),
                 _one_line(text[end:last]))


def context_rows(contexts: list[Context], spans: dict[int, list[Span] | None], bos: bool,
                 window: int) -> list[dict[str, Any]]:
    """One row per context for --format jsonl/parquet: rank, value, document, position,
    token and the text either side."""
    rows = []
    for context in contexts:
        shown = cut(context, spans.get(context.seq), bos, window)
        rows.append({"rank": context.rank, "value": context.value, "seq": context.seq,
                     "doc_id": context.doc_id, "position": context.position,
                     "token": shown.token, "before": shown.before, "after": shown.after})
    return rows


TOP_COLUMNS = ("rank", "value", "seq", "doc_id", "position", "token", "before", "after")
NEURON_COLUMNS = ("rank", "head", "neuron", "max_value", "density", "n_positions")
