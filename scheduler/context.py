"""What every command of one `lensbatch` invocation shares: its settings, read from the
environment once (and `--db`), and the database engine, opened (and migrated) on first
use."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Annotated

import typer
from sqlalchemy import Engine

from lensbatch.settings import Settings


@dataclass
class Invocation:
    settings: Settings = field(default_factory=Settings)
    command: str = ""  # the command running, for error messages ("submit", "db", ...)
    db_option: str | None = None  # the --db URL, when given

    @cached_property
    def engine(self) -> Engine:
        from lensbatch.store.db import ensure_schema
        from scheduler.database import CREATES, require_database

        if self.command and self.command not in CREATES:
            require_database(self.settings.database_url)
        return ensure_schema(self.settings.database_url)


def print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"lensbatch {version('lensbatch')}")
        raise typer.Exit()


Db = Annotated[str | None, typer.Option(
    "--db", metavar="URL", help="The database, an SQLAlchemy URL (sqlite:///path.db, "
    "postgresql://...); beats LENSBATCH_DATABASE_URL. Default: sqlite:///lensbatch.db.")]
Version = Annotated[bool, typer.Option(
    "--version", is_eager=True, callback=print_version, help="Print the version and exit.")]


def load_settings(ctx: typer.Context, db: Db = None, version: Version = False) -> None:
    """The app's callback: runs once per invocation, before its command. It fills the
    Invocation the CLI's main passed in (or a new one)."""
    state = ctx.obj if isinstance(ctx.obj, Invocation) else Invocation()
    state.settings = Settings.from_env()
    if db is not None:
        state.settings = replace(state.settings, database_url=db)
        state.db_option = db
    state.command = ctx.invoked_subcommand or ""
    ctx.obj = state


def invocation(ctx: typer.Context) -> Invocation:
    """The invocation's shared state (the callback's; made here for a command that is
    invoked on its own, as click's test runner can)."""
    if not isinstance(ctx.obj, Invocation):
        ctx.obj = Invocation(Settings.from_env())
    return ctx.obj
