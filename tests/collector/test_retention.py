"""Retention: raw samples, rollups and batch ids older than their periods are deleted (real SQLite file)."""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.collector.conftest import AGENT, batch, dump, registration, sample
from tests.peers.collector import run_collector
from weibao.collector.auth import Principal, Role
from weibao.collector.config import CollectorConfig, RetentionConfig
from weibao.collector.http.app import create_app
from weibao.core.wire import InventoryRegistration


def test_prune_removes_only_what_is_past_retention(tmp_path: Path) -> None:
    # a long retention for ingest, which refuses samples older than it; the pass below is given 30 days
    app = create_app(CollectorConfig(data_dir=tmp_path, retention=RetentionConfig(raw_days=3650)))
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


def _rows(db: Path) -> dict[str, list[tuple[object, int]]]:
    """What the live collector holds, read from its SQLite file: raw samples as (device, ts_ms), rollup
    buckets as (resolution, bucket_ms), and batch ids."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {
            "raw": sorted((str(d), int(t)) for d, t in conn.execute(
                "SELECT s.device, t.ts_ms FROM ts_samples t JOIN ts_series s ON s.id = t.series_id")),
            "rollups": sorted((int(r), int(b)) for r, b in conn.execute("SELECT resolution, bucket_ms FROM rollups")),
            "batches": [(str(b), 0) for (b,) in conn.execute("SELECT batch_id FROM batches")],
        }
    finally:
        conn.close()


def test_the_live_collector_prunes_on_its_own_schedule(tmp_path: Path) -> None:
    """A running collector whose retention pass runs every second: samples past ``raw_days`` and 5-minute
    buckets past ``rollup_300_days`` go; recent samples, hourly buckets and batch ids stay. Ingest refuses
    samples already past ``raw_days``: the old ones are sent a few seconds before they pass it."""
    retention = {"raw_days": 1, "rollup_300_days": 0.5, "rollup_3600_days": 400, "prune_interval_s": 1}
    with run_collector(tmp_path, {"retention": retention}) as peer:
        tok = peer.token(AGENT)
        now = datetime.now(UTC).replace(microsecond=0)
        old, recent = now - timedelta(days=1) + timedelta(seconds=4), now - timedelta(minutes=1)
        doc = batch([sample("core-sw-1", "up", 1.0, old), sample("acc-sw-1", "up", 1.0, old),
                     sample("core-sw-1", "up", 1.0, recent)])
        with peer.client(tok) as c:
            assert c.put("/api/v1/inventory", json=registration()).status_code == 200
            r = c.post("/api/v1/ingest", content=dump(doc))
            assert r.status_code == 200, r.text
            assert r.json()["samples"] == 3
        db = peer.data_dir / "state.db"
        old_ms, recent_ms = int(old.timestamp() * 1000), int(recent.timestamp() * 1000)
        # the three samples arrived; the pass may already have taken the old ones, hence no count here
        deadline = time.monotonic() + 15
        while any(t == old_ms for _, t in _rows(db)["raw"]):
            assert time.monotonic() < deadline, f"no retention pass removed the old samples:\n{peer.log()}"
            time.sleep(0.2)
        time.sleep(2.5)  # two more passes: they must not take what retention keeps
        rows = _rows(db)
        assert peer.proc.poll() is None
    assert rows["raw"] == [("core-sw-1", recent_ms)]
    five_min, hour = 300_000, 3_600_000
    old_hour, recent_hour = old_ms - old_ms % hour, recent_ms - recent_ms % hour
    assert (300, recent_ms - recent_ms % five_min) in rows["rollups"]
    assert not any(r == 300 and b < recent_ms - 86_400_000 // 2 for r, b in rows["rollups"])
    assert {(3600, old_hour), (3600, recent_hour)} <= set(rows["rollups"])
    assert rows["batches"] == [(doc["batch_id"], 0)]
    assert "retention: removed" in peer.log()
