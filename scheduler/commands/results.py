"""Commands that read a job's results back: `results`, `heads`, `report`, `export`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from scheduler.context import invocation
from scheduler.options import Format, JobId, Output


def results(ctx: typer.Context, job: JobId, fmt: Format = "table",
            output: Output = None) -> None:
    """Per-document metrics of a job.

    Example: lensbatch results 3f2a9c1e0b7d4e21 --format parquet --output results.parquet
    """
    from lensbatch.store.queries import RESULT_COLUMNS, job_summary, result_rows
    from scheduler.output import emit_rows

    engine = invocation(ctx).engine
    job_summary(engine, job)  # raises JobNotFound for a wrong id
    if fmt == "parquet" and output is not None:  # streamed in blocks, whatever the job's size
        from scheduler.export import write_results_parquet

        write_results_parquet(engine, job, output)
        return
    emit_rows(result_rows(engine, job), RESULT_COLUMNS, fmt, output)


PerDocument = Annotated[bool, typer.Option(
    "--per-document", help="Every document's per-head scores instead of the means (jobs "
    "run with --head-scores document).")]


def heads(ctx: typer.Context, job: JobId, fmt: Format = "table",
          output: Output = None, per_document: PerDocument = False) -> None:
    """Per-head attention summaries averaged over a job's documents, with its induction probe.

    Example: lensbatch heads 3f2a9c1e0b7d4e21 --format parquet --output heads.parquet
    """
    from lensbatch.errors import UserError
    from lensbatch.store import queries
    from scheduler.output import emit_rows, probe_lines

    engine = invocation(ctx).engine
    queries.job_summary(engine, job)  # raises JobNotFound for a wrong id
    if per_document:
        if not queries.has_document_heads(engine, job):
            raise UserError(f"job {job} kept no per-document head scores (run or submit "
                            "it with --head-scores document)")
        emit_rows(queries.document_head_rows(engine, job), queries.DOCUMENT_HEAD_COLUMNS,
                  fmt, output)
        return
    rows = queries.head_rows(engine, job)
    emit_rows(rows, queries.HEAD_COLUMNS, fmt, output,
              header=probe_lines(queries.job_probe(engine, job), rows))


def report(
    ctx: typer.Context,
    job: JobId,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"),
) -> None:
    """Write one self-contained HTML report of a job (opens offline; images embedded).

    Settings and model card, corpus numbers, head heatmaps and the probe (when recorded),
    loss histogram, loss against length, and the documents with the most induction hits.

    Example: lensbatch report 3f2a9c1e0b7d4e21 --output report.html
    """
    from scheduler.report.page import write_report

    state = invocation(ctx)
    size = write_report(state.engine, job, output, state.settings.cache_dir)
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
