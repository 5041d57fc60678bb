"""Commands that read a job's top activations: `top` (one neuron's contexts) and
`neurons` (a hook's neurons by their highest activation)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from scheduler.context import invocation
from scheduler.options import JobId, Output

Hook = Annotated[str, typer.Argument(
    help="A hook kept with --top-activations: full name (blocks.1.mlp.hook_post, "
         "hook_embed) or shorthand with its layer (mlp_post1, z0).")]
Neuron = Annotated[str, typer.Argument(
    help="The neuron: its index in the hook's last dimension, or HEAD.INDEX for a hook "
         "with heads (hook_z: 2.5 is head 2, index 5).")]
TopFormat = Annotated[str, typer.Option("--format", "-f",
                                        help="table, jsonl, or parquet (needs --output).")]
Window = Annotated[int, typer.Option(help="Tokens shown either side of the marked one.")]
Limit = Annotated[int, typer.Option(help="Neurons listed, highest first.")]
FORMATS = ("table", "jsonl", "parquet")


def _format(fmt: str, output: str | None) -> None:
    from lensbatch.errors import UserError

    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt}")
    if fmt == "parquet" and output is None:
        raise UserError("--format parquet needs --output FILE (Parquet is binary)")


def _bos_and_tokenizer(engine: Engine, job_id: str, cache_dir: str) -> tuple[bool, Any]:
    """Whether the job's sequences start with BOS, and its tokenizer (None offline)."""
    from lensbatch.store import report_data
    from lensbatch.store.queries import job_row
    from scheduler.report.text import load_tokenizer

    with engine.connect() as connection:
        job = job_row(connection, job_id)
    bos = report_data.prepends_bos(engine, job.model, job.settings)
    return bos, load_tokenizer(job.model, cache_dir)


def top(ctx: typer.Context, job: JobId, hook: Hook, neuron: Neuron,
        fmt: TopFormat = "table", output: Output = None, window: Window = 8) -> None:
    """A neuron's max-activating contexts (kept with --top-activations), the token marked.

    Example: lensbatch top 3f2a9c1e0b7d4e21 blocks.1.mlp.hook_post 17
    """
    from rich.console import Console
    from rich.markup import escape

    from lensbatch.hooks import one_hook
    from lensbatch.store.top_queries import neuron_top
    from scheduler.output import emit_rows
    from scheduler.report.text import token_spans
    from scheduler.top_output import TOP_COLUMNS, context_rows, cut, parse_neuron

    _format(fmt, output)
    state = invocation(ctx)
    head, index = parse_neuron(neuron)
    found = neuron_top(state.engine, job, one_hook(hook), index, head)
    bos, tokenizer = _bos_and_tokenizer(state.engine, job, state.settings.cache_dir)
    spans = {c.seq: token_spans(tokenizer, c.text) for c in found.contexts}
    if fmt != "table":
        emit_rows(context_rows(found.contexts, spans, bos, window), TOP_COLUMNS, fmt, output)
        return
    console = Console(highlight=False, width=160)
    density = "n/a" if found.density is None else f"{found.density:.4f}"
    name = neuron if head is None else f"head {head}, index {index}"
    console.print(f"{found.hook} neuron {name}: {found.n_positions} positions, "
                  f"density (above zero) {density}")
    for context in found.contexts:
        shown = cut(context, spans[context.seq], bos, window)
        # On a terminal the token is shown reversed; elsewhere between [[ and ]].
        text = shown.markup() if console.is_terminal else escape(shown.plain())
        console.print(f"{context.rank:>3}  {context.value:>10.4f}  {escape(context.doc_id)} "
                      f"@{context.position}  {text}")


def neurons(ctx: typer.Context, job: JobId, hook: Hook, limit: Limit = 20,
            fmt: TopFormat = "table", output: Output = None) -> None:
    """A hook's neurons by their highest activation, with density (share above zero).

    Example: lensbatch neurons 3f2a9c1e0b7d4e21 mlp_post1 --limit 10
    """
    from lensbatch.errors import UserError
    from lensbatch.hooks import one_hook
    from lensbatch.store.top_queries import neuron_rows
    from scheduler.output import emit_rows
    from scheduler.top_output import NEURON_COLUMNS

    _format(fmt, output)
    if limit <= 0:
        raise UserError(f"--limit must be positive, got {limit}")
    rows = neuron_rows(invocation(ctx).engine, job, one_hook(hook), limit)
    emit_rows(({"rank": rank, "head": r.head, "neuron": r.neuron, "max_value": r.max_value,
                "density": r.density, "n_positions": r.n_positions}
               for rank, r in enumerate(rows, start=1)), NEURON_COLUMNS, fmt, output)
