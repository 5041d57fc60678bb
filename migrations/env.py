"""Alembic environment: the URL comes from lensbatch's settings, never from alembic.ini.

The SQL views are derived from the metric registry (lensbatch/store/views.py): they are
dropped before the migrations run (so that a migration may rebuild a table under them)
and created again once the schema is at the newest revision.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from lensbatch.settings import Settings
from lensbatch.store.db import connect_args
from lensbatch.store.schema import metadata
from lensbatch.store.views import create_views, drop_views

config = context.config
# lensbatch.store.db passes the URL it was given; `alembic` run by hand reads the environment.
url = config.attributes.get("database_url") or Settings.from_env().database_url

# Any number of workers may start at once; on PostgreSQL one of them migrates while the
# others wait on this advisory lock, then find nothing left to do.
PG_LOCK_KEY = 7_316_204_911


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url, connect_args=connect_args(url))  # with a deadline
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
                drop_views(connection)
                context.run_migrations()
                head = context.script.get_current_head()
                if context.get_context().get_current_revision() == head:
                    create_views(connection)
        finally:
            if is_pg:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY})
                connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
