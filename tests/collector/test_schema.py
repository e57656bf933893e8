"""The migrations build exactly the schema the models declare (on SQLite; PostgreSQL in test_postgres)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import weibao.collector.reports.store  # declares the report tables on the shared Base
import weibao.collector.tickets.store  # noqa: F401  (declares the ticket tables on the shared Base)
from weibao.collector.notify import outbox  # noqa: F401  (declares the outbox table)
from weibao.collector.state.db import create_state_engine, migrate
from weibao.collector.state.models import Base


def test_migrations_match_models(tmp_path: Path) -> None:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        migrate(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
