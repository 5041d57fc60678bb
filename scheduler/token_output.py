"""`lensbatch tokens`: one document token by token, coloured by loss in a terminal,
plain columns otherwise, or one JSON object per token."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from lensbatch.tokens import TOTALS, TokenScore, totals

LOSS_SCALE = 10.0  # nats at which the colour is strongest (ln 50257 is about 10.8)
COLUMNS = ("position", "token", "loss", "predicted", "induction")


def loss_share(loss: float | None) -> float:
    """0 for no loss (or none to show), 1 at LOSS_SCALE nats and above."""
    return 0.0 if loss is None else max(0.0, min(loss / LOSS_SCALE, 1.0))


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


def coloured_table(tokens: Sequence[TokenScore]) -> Table:
    """A rich table whose token cells are shaded red by loss; hits are green."""
    table = Table(*COLUMNS)
    for t in tokens:
        red = int(255 * loss_share(t.loss))
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
