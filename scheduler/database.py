"""Which database a command reads: `--db URL`, else LENSBATCH_DATABASE_URL, else
lensbatch.db in the current directory; and the rule that a command which only reads
never creates one.

Only `run`, `submit`, `worker` and `db upgrade` may create a database (CREATES); every
other command needs one that exists, so a mistyped path or a shell in the wrong folder
gets one line naming the database, not an empty table and a new empty file.
"""

from __future__ import annotations

from pathlib import Path

from lensbatch.errors import UserError
from lensbatch.settings import mask_url

CREATES = frozenset({"run", "submit", "worker", "db"})
SETTING = "set --db or LENSBATCH_DATABASE_URL"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database, an in-memory one, or a
    URL SQLAlchemy cannot read (the engine names that one)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    database = parsed.database or ""
    if not parsed.drivername.startswith("sqlite") or database in ("", ":memory:") \
            or database.startswith("file:"):
        return None
    return Path(database)


def require_database(url: str) -> None:
    """UserError, naming the database, when `url` is a SQLite file that does not exist."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise UserError(f"no database at {path} ({SETTING})")


def not_found_line(message: str, url: str) -> str:
    """A "no job 'X'" message with the database it was looked for in."""
    return f"{message} in database {mask_url(url)}"
