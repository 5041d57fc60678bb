"""`lensbatch report` and `lensbatch export`: a job as an HTML page, or as Parquet files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from scheduler.cli import _engine, app


@app.command()
def report(
    job: Annotated[str, typer.Argument(help="Job id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"),
) -> None:
    """Write one self-contained HTML report of a job (opens offline; images embedded).

    Settings and model card, corpus numbers, head heatmaps and the probe (when recorded),
    loss histogram, loss against length, and the documents with the most induction hits.

    Example: lensbatch report 3f2a9c1e0b7d4e21 --output report.html
    """
    from scheduler.report import write_report

    size = write_report(_engine(), job, output)
    sys.stdout.write(f"wrote {output} ({size / 1024:.0f} KiB)\n")


@app.command()
def export(
    job: Annotated[str, typer.Argument(help="Job id.")],
    directory: Annotated[Path, typer.Argument(help="Directory for the .parquet files.")],
) -> None:
    """Write every table of a job as DIR/<table>.parquet (pandas.read_parquet reads them).

    Example: lensbatch export 3f2a9c1e0b7d4e21 export/
    """
    from scheduler.export import export_job

    for name, rows in export_job(_engine(), job, directory).items():
        sys.stdout.write(f"{directory / (name + '.parquet')}\t{rows} rows\n")
