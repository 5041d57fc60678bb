"""The `lensbatch` command line: the app, its commands, and the one place errors become one
line on standard error.

Commands live in scheduler/commands (evaluate.py, single.py, jobs.py, results.py,
compare.py, top.py) as plain functions; this module only registers them. A database
error that reaches main (a server stopped mid-way, a constraint violated) is one line
too: the host and the kind of error, never the statement or its parameters; a file the
user named that cannot be written or read is one line naming it; a job that is not found
is named with the database that was read. Settings are read once per invocation, with
the app's own options `--db` and `--version` (scheduler/context.py), and passed down.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from sqlalchemy.exc import SQLAlchemyError

from lensbatch.errors import JobNotFound, UserError
from lensbatch.settings import url_host
from lensbatch.store.errors import describe_db_error
from scheduler.commands import compare, evaluate, jobs, results, single, top
from scheduler.context import Invocation, load_settings

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
                results.results, results.heads, single.score, single.inspect,
                jobs.resume, jobs.cancel, jobs.workers, results.report, results.export,
                compare.compare, compare.ablations, compare.tokens, top.top, top.neurons):
    app.command()(command)
db_app.command("upgrade")(jobs.db_upgrade)


def main() -> None:
    state = Invocation()
    try:
        app(obj=state)
    except JobNotFound as exc:  # which database was read, so a wrong one is plain
        from scheduler.database import not_found_line

        fail(not_found_line(str(exc), state.settings.database_url))
    except UserError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:  # the database's, not the user's: one line all the same
        fail(database_error(exc, state.settings.database_url, state.command))
    except OSError as exc:  # a file the user named cannot be written or read
        if exc.filename is None:
            raise
        fail(f"{exc.filename}: {exc.strerror or type(exc).__name__}")
    except KeyboardInterrupt:
        sys.exit(130)


def fail(message: str) -> NoReturn:
    from scheduler.output import print_error

    print_error(message)
    sys.exit(2)


def database_error(exc: SQLAlchemyError, url: str, command: str) -> str:
    """One line for a database error: the host, the command and the error's kind, never
    the statement, its parameters (document texts) or the password."""
    where = f"`lensbatch {command}`" if command else "lensbatch"
    return f"database at {url_host(url)} failed during {where}: {describe_db_error(exc)}"
