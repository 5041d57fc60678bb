"""Engines and migrations. Every command that touches the database goes through here.

Every connection has a deadline: CONNECT_TIMEOUT seconds for a PostgreSQL server to
answer (libpq's connect_timeout covers the TCP connect, TLS and authentication), 30 s
for SQLite's lock.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import NullPool

from lensbatch.errors import DatabaseUnavailable
from lensbatch.settings import url_host

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
CONNECT_TIMEOUT = 5  # seconds, PostgreSQL
SQLITE_LOCK_TIMEOUT = 30  # seconds a writer waits for another's lock


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets `status` read while a run writes; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def connect_args(url: str) -> dict[str, Any]:
    """The driver's deadline for one connection (see the module's docstring)."""
    if url.startswith("sqlite"):
        return {"timeout": SQLITE_LOCK_TIMEOUT}
    return {"connect_timeout": CONNECT_TIMEOUT}


def _engine(url: str, **options: Any) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args=connect_args(url), **options)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args(url),
                             **options)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:  # ValueError: the port
        # The exception's text may quote the URL, password included: name its kind only.
        raise DatabaseUnavailable(f"invalid database URL for {url_host(url)} "
                                  f"({type(exc).__name__})") from None


@functools.lru_cache(maxsize=8)
def make_engine(url: str) -> Engine:
    """One engine per URL and process (engines hold the connection pool)."""
    return _engine(url)


def unpooled_engine(url: str) -> Engine:
    """An engine that keeps no connection between uses, for a process that forks (a
    worker's parent must hand its pool processes no open connection)."""
    return _engine(url, poolclass=NullPool)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = url
    return config


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (alembic upgrade)."""
    try:
        command.upgrade(alembic_config(url), revision)
    except (OperationalError, DBAPIError) as exc:
        raise DatabaseUnavailable(
            f"cannot reach database at {url_host(url)}: {type(exc.orig).__name__}"
        ) from None
    except CommandError:  # a revision this code does not have: a newer lensbatch wrote it
        raise DatabaseUnavailable(
            f"database at {url_host(url)} has a schema revision this lensbatch does not "
            "know (written by a newer version?): upgrade lensbatch") from None


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def ensure_schema(url: str) -> Engine:
    """Return an engine for `url` whose schema is at the newest migration."""
    engine = make_engine(url)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    try:
        current = _current_revision(engine)
    except (OperationalError, DBAPIError) as exc:
        raise DatabaseUnavailable(
            f"cannot reach database at {url_host(url)}: {type(exc.orig).__name__}"
        ) from None
    if current != head:
        upgrade(url)
    return engine

