"""Alembic environment: the URL comes from lensbatch's settings, never from alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from lensbatch.schema import metadata
from lensbatch.settings import Settings

config = context.config
# lensbatch.db passes the URL it was given; `alembic` run by hand reads the environment.
url = config.attributes.get("database_url") or Settings.from_env().database_url

# Any number of workers may start at once; on PostgreSQL one of them migrates while the
# others wait on this advisory lock, then find nothing left to do.
PG_LOCK_KEY = 7_316_204_911


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        is_pg = connection.dialect.name == "postgresql"
        if is_pg:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_LOCK_KEY})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if is_pg:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY})
                connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
