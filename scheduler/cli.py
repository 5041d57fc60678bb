"""The `lensbatch` command line: the app, its commands, and the one place errors become
one line on standard error.

Commands live in scheduler/commands (evaluate.py, jobs.py, results.py, compare.py) as plain
functions; this module only registers them. Settings are read once per invocation
(scheduler/context.py) and passed down.
"""

from __future__ import annotations

import sys

import typer

from lensbatch.errors import UserError
from scheduler.commands import compare, evaluate, jobs, results
from scheduler.context import load_settings

app = typer.Typer(
    help="Evaluate TransformerLens models on text corpora, on one machine or many.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    callback=load_settings,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")

for command in (evaluate.run, evaluate.submit, evaluate.worker, jobs.status, jobs.jobs,
                results.results, results.heads, evaluate.score, evaluate.inspect,
                jobs.resume, jobs.cancel, jobs.workers, results.report, results.export,
                compare.compare, compare.tokens):
    app.command()(command)
db_app.command("upgrade")(jobs.db_upgrade)


def main() -> None:
    try:
        app()
    except UserError as exc:
        from scheduler.output import print_error

        print_error(str(exc))
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
