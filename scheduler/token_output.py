"""`lensbatch tokens`: one document token by token, coloured by loss in a terminal,
plain columns otherwise, or one JSON object per token.

The terminal's colours use the report's scale: from the 5th to the 95th percentile of the
document's own token losses, so a model that is poor everywhere (random weights, about
ln 50257 = 10.8 nats a token) still shows which tokens are its hardest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from lensbatch.tokens import PERCENTILES, TOTALS, LossScale, TokenScore, loss_scale, totals

COLUMNS = ("position", "token", "loss", "predicted", "induction")


def _predicted(token: TokenScore) -> str:
    return "-" if token.correct is None else "yes" if token.correct else "no"


def _loss(token: TokenScore) -> str:
    return "-" if token.loss is None else f"{token.loss:.4f}"


def token_json(token: TokenScore) -> dict[str, Any]:
    return {"position": token.position, "token_id": token.token_id, "token": token.text,
            "loss": token.loss, "correct": token.correct, "candidate": token.candidate,
            "hit": token.hit, "novel": token.novel}


def plain_lines(tokens: Sequence[TokenScore]) -> list[str]:
    """Fixed-width columns, one line per token (the token as a Python string literal)."""
    width = max(len(repr(t.text)) for t in tokens)
    header = (f"{COLUMNS[0]:>8}  {COLUMNS[1]:<{width}}  {COLUMNS[2]:>9}  "
              f"{COLUMNS[3]:<9}  {COLUMNS[4]}")
    return [header] + [f"{t.position:>8}  {t.text!r:<{width}}  {_loss(t):>9}  "
                       f"{_predicted(t):<9}  {t.induction}" for t in tokens]


def document_scale(tokens: Sequence[TokenScore]) -> LossScale:
    return loss_scale([t.loss for t in tokens if t.loss is not None])


def coloured_table(tokens: Sequence[TokenScore]) -> Table:
    """A rich table whose token cells are shaded red by loss on the document's own scale
    (document_scale; the caption gives it); hits are green."""
    scale = document_scale(tokens)
    low, high = PERCENTILES
    table = Table(*COLUMNS, caption=f"colour: loss from {scale.low:.2f} nats (unshaded) to "
                  f"{scale.high:.2f} (full red), the {low:.0f}th and {high:.0f}th percentiles "
                  "of this document's token losses")
    for t in tokens:
        red = int(255 * scale.share(t.loss))
        style = f"on rgb({min(255, 80 + red)},{max(0, 80 - red // 4)},{max(0, 80 - red // 4)})"
        marker = {"hit": "bold green", "novel hit": "bold bright_green"}.get(t.induction, "")
        table.add_row(str(t.position), Text(repr(t.text), style=style), _loss(t),
                      _predicted(t), Text(t.induction, style=marker))
    return table


def _sums_text(values: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {values[name]:.4f}" if name == "nll_sum"
                     else f"{name} {int(values[name])}" for name in TOTALS)


def total_lines(tokens: Sequence[TokenScore], stored: Any | None) -> list[str]:
    """The per-token numbers summed, and the document's stored metrics beside them."""
    lines = ["sum over the tokens: " + _sums_text(totals(tokens))]
    if stored is None:
        return [*lines, "stored: no result for this document yet"]
    return [*lines, "stored for the document: " + _sums_text(
        {name: float(getattr(stored, name)) for name in TOTALS})]
