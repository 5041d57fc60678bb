"""Commands that set jobs side by side or look inside one document: `compare`,
`ablations`, `tokens`."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from typing import Annotated

import typer
from rich.console import Console

from lensbatch.errors import UserError
from scheduler.context import invocation
from scheduler.jobref import ablation_sweep_argument, ids_argument
from scheduler.options import Device, Format, JobId, Output

Part = Annotated[str, typer.Option(
    help="all (the table format only), or one of corpus, differences, documents, heads "
         "(one table: what csv, jsonl and parquet write).")]
Top = Annotated[int, typer.Option(help="Documents and heads listed per job.")]


def compare(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(
        help="Two job ids or more, or a sweep id (or the first characters of each).",
        callback=ids_argument)],
    fmt: Format = "table",
    output: Output = None,
    part: Part = "all",
    top: Top = 10,
) -> None:
    """Compare jobs on the documents they share: loss, accuracy and induction hit rate
    with 95% intervals (a seeded bootstrap over documents), each job's paired difference
    from the first, the documents whose loss differs most, and per-head differences.

    Example: lensbatch compare 3f2a9c1e0b7d4e21 9b0c4d2e7a1f3e65 --part differences
    """
    from scheduler.compare_view import PARTS, gather, part_rows, shared_line, table_sections
    from scheduler.output import FORMATS, INTERVAL_NOTE, emit_rows, write_rows

    if part not in ("all", *PARTS):
        raise UserError(f"--part must be all or one of {', '.join(PARTS)}, got {part}")
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt}")
    if fmt != "table" and part == "all":
        raise UserError(f"--format {fmt} writes one table: choose it with --part "
                        f"({', '.join(PARTS)})")
    compared = gather(invocation(ctx).engine, ids, top)
    if fmt != "table":
        columns, rows = part_rows(compared, part)
        emit_rows(rows, columns, fmt, output)
        return
    with open(output, "w", encoding="utf-8") if output else nullcontext(sys.stdout) as out:
        out.write(f"{shared_line(compared)}\n{INTERVAL_NOTE}\n")
        for (heading, columns, rows), name in zip(table_sections(compared), PARTS,
                                                  strict=True):
            if part in ("all", name):
                out.write(f"\n{heading}\n")
                write_rows(rows, columns, "table", out)


def ablations(
    ctx: typer.Context,
    sweep: Annotated[str, typer.Argument(
        help="An ablation sweep's id (run or submit --ablate-each-head), or the first "
             "characters of it.", callback=ablation_sweep_argument)],
    fmt: Format = "table",
    output: Output = None,
) -> None:
    """Rank an ablation sweep's heads by what ablating each costs: the loss increase
    over the unablated job (token-weighted, paired by document), and the accuracy and
    induction hit rate changes, each with its 95% interval.

    Example: lensbatch ablations f12c7f45b96c4dd1 --format csv --output ablations.csv
    """
    from scheduler.ablation_view import COLUMNS, gather, heading, rows, table_rows
    from scheduler.output import emit_rows

    found = gather(invocation(ctx).engine, sweep)
    if fmt == "table":
        columns, text = table_rows(found)
        emit_rows(text, columns, fmt, output, header=heading(found))
        return
    emit_rows(rows(found), COLUMNS, fmt, output)


def tokens(
    ctx: typer.Context,
    job: JobId,
    doc: Annotated[str, typer.Argument(help="The document's id (the doc_id column of "
                                            "`lensbatch results`).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or jsonl.")] = "table",
    device: Device = "auto",
) -> None:
    """Score one stored document again with the job's model and settings, and show each
    token: its loss, whether it was predicted, and whether it was an induction candidate
    or hit. The sums below match the document's stored numbers.

    Example: lensbatch tokens 3f2a9c1e0b7d4e21 induction-heads-explained
    """
    from lensbatch.jobspec import JobSpec
    from lensbatch.store.report_data import find_document, job_record, stored_result
    from scheduler.rescore import job_ablation, job_model, score_text
    from scheduler.token_output import coloured_table, plain_lines, token_json, total_lines

    if fmt not in ("table", "jsonl"):
        raise UserError(f"--format must be table or jsonl, got {fmt}")
    state = invocation(ctx)
    record = job_record(state.engine, job)  # JobNotFound for a wrong id
    found = find_document(state.engine, job, doc)
    if found is None:
        raise UserError(f"job {job} has no document {doc!r} (the ids are the doc_id column "
                        f"of `lensbatch results {job}`)")
    model, spec = job_model(JobSpec.from_json(record["settings"]), device,
                            state.settings.cache_dir)
    scores = score_text(model, found.text, spec,
                        job_ablation(state.engine, job, spec, model))
    if fmt == "jsonl":
        for token in scores:
            print(json.dumps(token_json(token)))
        return
    if sys.stdout.isatty():
        Console().print(coloured_table(scores))
    else:
        print("\n".join(plain_lines(scores)))
    print("\n".join(total_lines(scores, stored_result(state.engine, job, found.seq))))
