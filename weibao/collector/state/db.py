"""The state-store engine: SQLite (WAL, synchronous=FULL) or PostgreSQL, migrated to the latest schema."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import URL, Engine, create_engine, event, make_url, text

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# any constant: serialises migrations of collectors starting at once against one PostgreSQL
_PG_MIGRATION_LOCK = 0x77656962


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: the agent deletes a batch once we acknowledge it, so an acknowledged commit must survive a
    # power cut (NORMAL in WAL mode could lose the last commits); one WAL fsync per batch
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA mmap_size=268435456")
    cur.close()


def state_url(url: str) -> URL:
    """``url`` as SQLAlchemy should open it: a bare ``postgresql://`` means psycopg2, the driver weibao ships
    with (SQLAlchemy 2.1 would otherwise pick psycopg 3)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


# libpq's keepalives: a state connection to a server that vanished fails within about a minute
_PG_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 5, "keepalives_count": 3}


def create_state_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///PATH`` or ``postgresql://...``); the SQLite file's folder is created."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=8, max_overflow=8)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    parsed = state_url(url)
    args: dict[str, object] = dict(_PG_KEEPALIVES)
    if "options" not in parsed.query:
        # the server, too, ends the session of a client that vanished (its row locks with it: a replica's
        # host lost mid-transaction must not hold a ticket or the leader row for hours)
        args["options"] = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
    return create_engine(parsed, pool_size=8, max_overflow=8, pool_pre_ping=True, connect_args=args)


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine) -> str | None:
    """Bring the schema to the newest revision; returns that revision. Safe to run at every start."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    rev = current_revision(engine)
    log.info("state store %s at schema revision %s", engine.dialect.name, rev)
    return rev


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        rev: str | None = MigrationContext.configure(conn).get_current_revision()
        return rev
