"""Retention: raw samples, rollups and batch ids older than their periods are deleted (real SQLite file)."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.wire import InventoryRegistration
from collector.app import create_app
from collector.auth import Principal, Role
from collector.config import CollectorConfig
from tests.collector.conftest import dump, registration, sample


def test_prune_removes_only_what_is_past_retention(tmp_path: Path) -> None:
    app = create_app(CollectorConfig(data_dir=tmp_path))
    ctx = app.state.ctx
    ctx.registry.register(InventoryRegistration.model_validate(registration()))
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=40), now - timedelta(hours=1)
    doc = {"batch_id": str(uuid.uuid4()), "agent": "site-a", "events": [],
           "samples": [sample("core-sw-1", "up", 1.0, old), sample("core-sw-1", "up", 1.0, recent)]}
    ctx.ingestor.ingest(Principal("site-a", Role.AGENT), dump(doc))

    done = ctx.ingestor.prune(raw_days=30, batch_days=30, rollup_days={300: 30, 3600: 400})
    assert done["samples"] == 1
    assert done["rollups_300"] == 1
    assert done["rollups_3600"] == 0
    conn = sqlite3.connect(tmp_path / "state.db")
    try:
        assert conn.execute("SELECT count(*) FROM ts_samples").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM rollups WHERE resolution = 300").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM rollups WHERE resolution = 3600").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM batches").fetchone()[0] == 1  # received just now
    finally:
        conn.close()
    ctx.store.close()
    ctx.engine.dispose()
