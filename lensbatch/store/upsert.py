"""INSERT ... ON CONFLICT DO UPDATE for the two databases lensbatch supports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

INSERTS: dict[str, Callable[[Table], Any]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def upsert(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert rows; where `keys` already exist, overwrite the other columns."""
    if not rows:
        return
    insert = INSERTS[connection.dialect.name]
    statement = insert(table)
    updates = {c: statement.excluded[c] for c in rows[0] if c not in keys}
    connection.execute(
        statement.on_conflict_do_update(index_elements=list(keys), set_=updates), list(rows)
    )


def insert_ignore(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert rows, skipping those whose `keys` already exist."""
    if not rows:
        return
    insert = INSERTS[connection.dialect.name]
    connection.execute(
        insert(table).on_conflict_do_nothing(index_elements=list(keys)), list(rows)
    )


def increment(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert rows; where `keys` already exist, add the other columns to the stored
    values (counters). Rows are written in the order given: callers that may run
    concurrently pass them in key order, so that they lock rows in the same order."""
    if not rows:
        return
    insert = INSERTS[connection.dialect.name]
    statement = insert(table)
    updates = {c: table.c[c] + statement.excluded[c] for c in rows[0] if c not in keys}
    connection.execute(
        statement.on_conflict_do_update(index_elements=list(keys), set_=updates), list(rows)
    )
