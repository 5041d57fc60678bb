"""Commands that read a job's results back: `results`, `heads`, `report`, `export`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import Engine

from scheduler.columns import AllColumns, Columns
from scheduler.context import invocation
from scheduler.jobref import job_or_sweep_argument
from scheduler.options import Format, JobId, Output, given

if TYPE_CHECKING:
    from sqlalchemy import Engine


Activations = Annotated[bool, typer.Option(
    "--activations", help="The job's activation statistics instead (jobs run with "
    "--activations HOOK --stats STAT): doc_id, hook, layer, head, stat, value.")]


def results(ctx: typer.Context, job: JobId, fmt: Format = "table",
            output: Output = None, columns: Columns = None,
            everything: AllColumns = False, activations: Activations = False) -> None:
    """Per-document metrics of a job, with the documents' own JSONL fields (metadata)
    as the last columns. A table shows the key columns (doc_id, n_tokens, loss,
    accuracy, induction_hits); --columns or --all the others.

    Example: lensbatch results 3f2a9c1e0b7d4e21 --format parquet --output results.parquet
    """
    from lensbatch.store.queries import result_layout, result_rows
    from scheduler.columns import RESULT_KEY_COLUMNS, choose_columns, project
    from scheduler.output import emit_rows

    engine = invocation(ctx).engine
    layout = result_layout(engine, job)  # raises JobNotFound for a wrong id
    if activations:
        from lensbatch.store.activations import ACTIVATION_COLUMNS

        chosen = choose_columns(ACTIVATION_COLUMNS, ACTIVATION_COLUMNS, fmt, columns,
                                everything)
        activation_results(engine, job, fmt, output, chosen.columns)
        return
    chosen = choose_columns(layout.columns, RESULT_KEY_COLUMNS, fmt, columns, everything)
    if fmt == "parquet" and output is not None and chosen.columns == layout.columns:
        from scheduler.export import write_results_parquet  # streamed in blocks

        write_results_parquet(engine, job, output)
        return
    emit_rows(project(result_rows(engine, job), chosen.columns), chosen.columns, fmt, output,
              width=chosen.width)


def activation_results(engine: Engine, job: str, fmt: str, output: str | None,
                       columns: tuple[str, ...]) -> None:
    """`results JOB --activations`: one row per document, hook, layer, head and stat."""
    from lensbatch.errors import UserError
    from lensbatch.store.activations import activation_rows, has_activations
    from scheduler.columns import project
    from scheduler.output import emit_rows

    if not has_activations(engine, job):
        raise UserError(f"job {job} kept no activation statistics (run or submit it with "
                        "--activations HOOK --stats STAT)")
    rows = project(activation_rows(engine, job), columns)
    if fmt == "parquet" and output is not None:
        from scheduler.export import ACTIVATION_TYPES, write_parquet

        write_parquet(rows, columns, output, ACTIVATION_TYPES)
        return
    emit_rows(rows, columns, fmt, output)


PerDocument = Annotated[bool, typer.Option(
    "--per-document", help="Every document's per-head scores instead of the means (jobs "
    "run with --head-scores document).")]
Top = Annotated[int | None, typer.Option(
    "--top", help="Only the N heads with the highest --by score.")]
By = Annotated[str, typer.Option(
    "--by", help="The score --top ranks heads by (and the order of the rows when given): "
    "a score column, such as induction_score, prev_token_score or "
    "probe_induction_score.")]


def heads(ctx: typer.Context, job: JobId, fmt: Format = "table",
          output: Output = None, per_document: PerDocument = False,
          columns: Columns = None, everything: AllColumns = False,
          top: Top = None, by: By = "induction_score") -> None:
    """Per-head attention summaries averaged over a job's documents, with its induction
    probe. A table shows the key columns; --columns or --all the others; --top N the N
    heads with the highest --by score (induction_score unless given).

    Example: lensbatch heads 3f2a9c1e0b7d4e21 --format parquet --output heads.parquet
    """
    from lensbatch.errors import UserError
    from lensbatch.store.head_queries import (
        DOCUMENT_HEAD_COLUMNS,
        HEAD_COLUMNS,
        document_head_rows,
        has_document_heads,
        head_rows,
        job_probe,
    )
    from lensbatch.store.queries import job_summary
    from lensbatch.store.report_data import model_card
    from scheduler.columns import (
        DOCUMENT_HEAD_KEY_COLUMNS,
        HEAD_KEY_COLUMNS,
        choose_columns,
        project,
        top_rows,
    )
    from scheduler.output import emit_rows, has_no_heads, no_heads_line, probe_lines

    engine = invocation(ctx).engine
    model = job_summary(engine, job).model  # raises JobNotFound for a wrong id
    refuse_no_heads(engine, job)
    ranked = top is not None or given(ctx, "by")
    scores = [c for c in HEAD_COLUMNS if c not in ("layer", "head", "n_documents")]
    if ranked and per_document:
        raise UserError("--top and --by rank the heads' means: leave out --per-document")
    if ranked and by not in scores:
        raise UserError(f"--by takes a score column ({', '.join(scores)}), got {by}")
    if per_document:
        if not has_document_heads(engine, job):
            raise UserError(f"job {job} kept no per-document head scores (run or submit "
                            "it with --head-scores document)")
        chosen = choose_columns(DOCUMENT_HEAD_COLUMNS, DOCUMENT_HEAD_KEY_COLUMNS, fmt,
                                columns, everything)
        emit_rows(project(document_head_rows(engine, job), chosen.columns), chosen.columns,
                  fmt, output, width=chosen.width)
        return
    chosen = choose_columns(HEAD_COLUMNS, HEAD_KEY_COLUMNS, fmt, columns, everything)
    rows = head_rows(engine, job)
    no_heads = has_no_heads(model_card(engine, model))
    header = probe_lines(job_probe(engine, job), rows, no_heads)
    if no_heads and fmt == "table":  # the probe's losses and one plain line; no empty table
        sys.stdout.write("\n".join(header) + "\n")
        return
    if no_heads:  # csv, jsonl, parquet: no rows, and the reason where people read it
        sys.stderr.write(no_heads_line(model) + "\n")
    shown = top_rows(rows, by, top) if ranked else rows
    emit_rows(project(shown, chosen.columns), chosen.columns, fmt, output, header=header,
              width=chosen.width)


def refuse_no_heads(engine: Engine, job: str) -> None:
    """One line for a job run with --no-heads: it has no head scores and no probe, and
    never will (not "not run yet")."""
    from lensbatch.errors import UserError
    from scheduler.jobref import has_heads

    if not has_heads(engine, job):
        raise UserError(f"job {job} was run with --no-heads: it has no per-head scores and "
                        "no induction probe (run it again without --no-heads for them)")


def report(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="Job id, or a sweep id for the sweep's page "
                                            "(or the first characters of one).",
                                       callback=job_or_sweep_argument)],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"),
    tokens: Annotated[bool, typer.Option(
        "--tokens/--no-tokens", help="Draw the hardest documents token by token, scored "
        "again with the job's model (loads it); --no-tokens leaves the model unloaded.")
    ] = True,
    neuron: Annotated[list[str] | None, typer.Option(
        "--neuron", metavar="HOOK:NEURON", help="Add a card for this neuron to the Neurons "
        "section (a job run with --top-activations); repeatable. HOOK and NEURON as `top` "
        "takes them: hook_embed:3, mlp_post1:17, z0:1.3 (head 1, index 3).")] = None,
) -> None:
    """Write one self-contained HTML report of a job or a sweep (opens offline; images
    embedded, no script).

    A job: settings and model card, corpus numbers with 95% intervals, head heatmaps and
    the probe (when recorded), loss histogram, loss against length, the ten hardest
    documents token by token (scored again with the job's model), the documents with
    the most induction hits, and for a job run with --top-activations its neurons (the
    top ones per hook, each card with its histogram and contexts). A sweep: each rate
    across its models, per-head small multiples, and the differences from the first
    model.

    Example: lensbatch report 3f2a9c1e0b7d4e21 --output report.html
    """
    from scheduler.report.neurons import parse_request
    from scheduler.report.page import write_report

    requests = [parse_request(value) for value in neuron or []]
    state = invocation(ctx)
    size = write_report(state.engine, job, output, state.settings.cache_dir, tokens,
                        requests)
    sys.stdout.write(f"wrote {output} ({size / 1024:.0f} KiB)\n")


def export(
    ctx: typer.Context,
    job: JobId,
    directory: Annotated[Path, typer.Argument(help="Directory for the .parquet files.")],
) -> None:
    """Write every table of a job as DIR/<table>.parquet (pandas.read_parquet reads them).

    Example: lensbatch export 3f2a9c1e0b7d4e21 export/
    """
    from scheduler.export import export_job

    for name, rows in export_job(invocation(ctx).engine, job, directory).items():
        sys.stdout.write(f"{directory / (name + '.parquet')}\t{rows} rows\n")
