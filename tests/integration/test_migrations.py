"""The schema is made only by Alembic, identically on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from lensbatch.store import db, schema


def table_columns(url: str) -> dict[str, set[str]]:
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {t: {c["name"] for c in found.get_columns(t)}
                for t in found.get_table_names() if t != "alembic_version"}
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_downgrade_upgrade(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    expected = {t.name: {c.name for c in t.columns} for t in schema.metadata.sorted_tables}
    db.upgrade(url)
    assert table_columns(url) == expected
    db.downgrade(url, "base")
    assert table_columns(url) == {}
    db.upgrade(url)
    assert table_columns(url) == expected


def test_ensure_schema_is_idempotent(sqlite_url: str) -> None:
    db.ensure_schema(sqlite_url)
    db.ensure_schema(sqlite_url)
    assert "results" in table_columns(sqlite_url)
