"""What every command of one `lensbatch` invocation shares: its settings, read from the
environment once, and the database engine, opened (and migrated) on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import typer
from sqlalchemy import Engine

from lensbatch.settings import Settings


@dataclass
class Invocation:
    settings: Settings = field(default_factory=Settings)
    command: str = ""  # the command running, for error messages ("submit", "db", ...)

    @cached_property
    def engine(self) -> Engine:
        from lensbatch.store.db import ensure_schema

        return ensure_schema(self.settings.database_url)


def load_settings(ctx: typer.Context) -> None:
    """The app's callback: runs once per invocation, before its command. It fills the
    Invocation the CLI's main passed in (or a new one)."""
    state = ctx.obj if isinstance(ctx.obj, Invocation) else Invocation()
    state.settings = Settings.from_env()
    state.command = ctx.invoked_subcommand or ""
    ctx.obj = state


def invocation(ctx: typer.Context) -> Invocation:
    """The invocation's shared state (the callback's; made here for a command that is
    invoked on its own, as click's test runner can)."""
    if not isinstance(ctx.obj, Invocation):
        ctx.obj = Invocation(Settings.from_env())
    return ctx.obj
