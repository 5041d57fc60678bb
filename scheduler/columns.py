"""Which columns `results` and `heads` print, how many rows `heads --top` keeps, and
the header lines above their tables folded to the same width.

A terminal table shows a command's key columns and fits TABLE_WIDTH columns; `--columns
a,b,c` picks columns (in every format), `--all` shows every column in the table. csv,
jsonl and Parquet keep every column unless --columns picks some.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from lensbatch.errors import UserError

TABLE_WIDTH = 100  # the widest a default table is, in terminal columns

RESULT_KEY_COLUMNS = ("doc_id", "n_tokens", "loss", "accuracy", "induction_hits")
HEAD_KEY_COLUMNS = ("layer", "head", "prev_token_score", "induction_score",
                    "probe_induction_score", "attn_entropy")
DOCUMENT_HEAD_KEY_COLUMNS = ("doc_id", "layer", "head", "prev_token_score",
                             "induction_score", "attn_entropy")

Columns = Annotated[str | None, typer.Option(
    "--columns", help="Columns to print, comma-separated, in that order (any format); "
    "default in a table: the key columns.")]
AllColumns = Annotated[bool, typer.Option(
    "--all", help="Every column in the table (it is then wider than 100 columns); csv, "
    "jsonl and Parquet always have every column.")]


@dataclass(frozen=True)
class ColumnChoice:
    columns: tuple[str, ...]
    width: int | None  # the table's widest, in terminal columns; None: as its cells need


def choose_columns(available: Sequence[str], key: Sequence[str], fmt: str,
                   picked: str | None = None, everything: bool = False) -> ColumnChoice:
    """The columns to write: `picked` (--columns), every one (--all, or a format other
    than the table), or the `key` ones in a table of TABLE_WIDTH."""
    from lensbatch.hooks import split_list

    if picked is not None and everything:
        raise UserError("--columns and --all: give one of them")
    if picked is not None:
        names = tuple(split_list(picked))
        unknown = [name for name in names if name not in available]
        if unknown or not names:
            raise UserError(f"unknown column {', '.join(unknown) or repr(picked)}; the "
                            f"columns are: {', '.join(available)}")
        return ColumnChoice(names, None)
    if everything or fmt != "table":
        return ColumnChoice(tuple(available), None)
    return ColumnChoice(tuple(c for c in key if c in available), TABLE_WIDTH)


def project(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Each row with only `columns`, in that order."""
    for row in rows:
        yield {column: row[column] for column in columns}


def top_rows(rows: Sequence[dict[str, Any]], by: str, n: int | None) -> list[dict[str, Any]]:
    """The rows by `by`, highest first (those without a value last, in their order),
    the first `n` of them (all with None)."""
    if n is not None and n < 1:
        raise UserError(f"--top must be at least 1, got {n}")
    scored = sorted((r for r in rows if r[by] is not None), key=lambda r: -r[by])
    ranked = scored + [r for r in rows if r[by] is None]
    return ranked if n is None else ranked[:n]


def wrapped(line: str, width: int | None) -> str:
    """`line` folded at spaces into lines of at most `width`, continued two spaces
    further in than it starts."""
    if width is None or len(line) <= width:
        return line
    indent = " " * (len(line) - len(line.lstrip(" ")))
    return "\n".join(textwrap.wrap(line, width, subsequent_indent=indent + "  ",
                                   break_long_words=False))
