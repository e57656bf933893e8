"""Alembic migrations of the state store, run programmatically at start (see collector.state.engine)."""
