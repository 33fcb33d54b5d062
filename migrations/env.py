"""Alembic environment: one migration history for every service's schema.

The URL comes from the ``DATABASE_URL`` environment variable (or ``-x url=...``), never from a
file, so no credential is ever committed.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from services.common.config import database_url, sqlalchemy_url

config = context.config
url = context.get_x_argument(as_dictionary=True).get("url") or database_url()


def run_migrations_online() -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, version_table_schema="public")
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=sqlalchemy_url(url), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
