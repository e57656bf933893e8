"""Alembic environment: runs on the connection handed over by weibao.collector.state.db.migrate()."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
# batch mode lets later ALTERs work on SQLite, which rebuilds tables instead of altering them
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
