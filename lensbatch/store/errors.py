"""Database errors described in words that are safe to print: the error's kind, never
the statement, its parameters (document texts) or the connection's password."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, SQLAlchemyError


def describe_db_error(exc: SQLAlchemyError) -> str:
    """The driver's error class, with PostgreSQL's SQLSTATE and constraint name (psycopg)
    or SQLite's message, which never quotes values (for example `database is locked`)."""
    if not isinstance(exc, DBAPIError) or exc.orig is None:
        return type(exc).__name__
    orig = exc.orig
    kind = type(orig).__name__
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        diag = getattr(orig, "diag", None)
        constraint = getattr(diag, "constraint_name", None)
        on = f", constraint {constraint}" if constraint else ""
        return f"{kind} (SQLSTATE {sqlstate}{on})"
    if type(orig).__module__ == "sqlite3":
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
        return f"{kind}: {first}" if first else kind
    return kind
