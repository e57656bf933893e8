"""Alembic migrations of the state store, run programmatically at start (see weibao.collector.state.db)."""
