"""The state store on a real PostgreSQL: migrations run at start (and again, harmlessly), ingest and
duplicates behave as on SQLite."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from tests.collector.conftest import AGENT, CST, HISTORY_DAYS, batch, dump, registration, sample
from tests.peers import postgres
from tests.peers.collector import CollectorPeer, run_collector
from weibao.collector.state.db import MIGRATIONS, create_state_engine, migrate

pytestmark = pytest.mark.skipif(not postgres.available(), reason=postgres.missing() or "")

T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=CST)


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres.Postgres]:
    with postgres.run_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def pg_collector(tmp_path_factory: pytest.TempPathFactory, pg: postgres.Postgres) -> Iterator[CollectorPeer]:
    with run_collector(Path(tmp_path_factory.mktemp("pgc")), {"state_url": pg.url, **HISTORY_DAYS}) as peer:
        yield peer


# the newest revision among the migration scripts shipped in the package
HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


def pg_counts(pg: postgres.Postgres) -> dict[str, int]:
    engine = create_engine(pg.url)
    try:
        with engine.connect() as conn:
            return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())  # noqa: S608
                    for t in ("batches", "rollups", "events", "series", "devices")}
    finally:
        engine.dispose()


def test_migrations_ran_on_postgres(pg: postgres.Postgres, pg_collector: CollectorPeer) -> None:
    engine = create_engine(pg.url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"alembic_version", "tokens", "devices", "batches", "series", "rollups", "events",
                "tickets", "ticket_events", "maintenance_windows", "notify_outbox"} <= tables
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    finally:
        engine.dispose()
    # a second start finds nothing to do; the URL as the README writes it, without a driver name
    bare = pg.url.replace("postgresql+psycopg2://", "postgresql://")
    assert bare.startswith("postgresql://")
    again = create_state_engine(bare)
    try:
        assert migrate(again) == HEAD
    finally:
        again.dispose()


def test_ingest_and_duplicate_on_postgres(pg: postgres.Postgres, pg_collector: CollectorPeer) -> None:
    tok = pg_collector.token(AGENT)
    with pg_collector.client(tok) as c:
        assert c.put("/api/v1/inventory", json=registration()).status_code == 200
        values = [5.0, 1.0, 9.0]
        doc = batch([sample("core-sw-1", "cpu.util_pct", v, T0 + timedelta(seconds=20 * i))
                     for i, v in enumerate(values)],
                    [{"device": "core-sw-1", "kind": "rebooted", "ts": T0.isoformat(), "data": {}}])
        before = pg_counts(pg)
        r = c.post("/api/v1/ingest", content=dump(doc))
        assert r.status_code == 200, r.text
        after = pg_counts(pg)
        assert after["batches"] - before["batches"] == 1
        assert after["events"] - before["events"] == 1
        assert after["rollups"] - before["rollups"] == 2  # one 5-minute and one hourly bucket
        raw = sqlite3.connect(pg_collector.data_dir / "samples.db")
        try:
            assert raw.execute("SELECT count(*) FROM ts_samples").fetchone()[0] == 3
        finally:
            raw.close()

        assert c.post("/api/v1/ingest", content=dump(doc)).json()["duplicate"] is True
        assert pg_counts(pg) == after

        r = c.get("/api/v1/series", params={"device": "core-sw-1", "metric": "cpu.util_pct", "step": 3600,
                                            "from": (T0 - timedelta(hours=1)).isoformat(),
                                            "to": (T0 + timedelta(hours=1)).isoformat()})
        p = r.json()["series"][0]["points"][0]
        assert (p["min"], p["max"], p["last"], p["count"]) == (1.0, 9.0, 9.0, 3)
        assert p["avg"] == pytest.approx(5.0)
        bad = c.post("/api/v1/ingest", content=dump(batch([sample("nope", "up", 1.0, T0)])))
        assert bad.status_code == 422
        assert pg_counts(pg) == after
    assert httpx.get(f"{pg_collector.url}/healthz").json()["status"] == "ok"


def test_tokens_are_stored_only_as_their_sha256_on_postgres(pg: postgres.Postgres, pg_collector: CollectorPeer) -> None:
    token = pg_collector.token("hash-check", role="engineer")
    assert token
    engine = create_engine(pg.url)
    try:
        with engine.connect() as conn:
            tables = inspect(engine).get_table_names()
            assert "tokens" in tables
            # each row as its text form: every column of every row of every table
            leaks = [t for t in tables
                     if conn.execute(text(f'SELECT count(*) FROM "{t}" r WHERE strpos(r::text, :tok) > 0'),  # noqa: S608
                                     {"tok": token}).scalar_one()]
            stored = conn.execute(text("SELECT token_hash FROM tokens WHERE name = 'hash-check'")).scalar_one()
    finally:
        engine.dispose()
    assert leaks == [], f"the token's text is stored in {leaks}"
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    with pg_collector.client(token) as c:  # and the stored hash is what the collector checks
        assert c.get("/api/v1/devices").status_code == 200


def test_nul_in_any_text_is_refused_not_a_500_on_postgres(pg_collector: CollectorPeer) -> None:
    # PostgreSQL's text cannot hold U+0000: every door that takes text refuses it before it gets there
    agent = pg_collector.client(pg_collector.token("nul-agent"))
    eng = pg_collector.client(pg_collector.token("nul-eng", role="engineer"))
    reg = registration(agent="nul-agent", devices=("nul-sw-1",))
    reg["devices"][0]["asset"] = {"location": "rack\u00001"}
    tries = [
        agent.put("/api/v1/inventory", json=reg),
        eng.post("/api/v1/tickets", json={"kind": "request", "summary": "a\u0000b"}),
        eng.post("/api/v1/maintenance", json={"devices": ["core-sw-1"], "start": T0.isoformat(),
                                              "end": (T0 + timedelta(hours=1)).isoformat(), "reason": "x\u0000"}),
        eng.post("/api/v1/tickets/20261125-0001/comment", json={"note": "\u0000"}),
        eng.get("/api/v1/tickets", params={"device": "core\x00sw"}),
        eng.get("/api/v1/tickets/2026%001125-0001"),
        eng.get("/api/v1/series", params={"device": "core-sw-1\x00", "metric": "up"}),
        eng.get("/api/v1/maintenance", params={"device": "\x00"}),
        eng.put("/api/v1/reports/weekly/2026-W48/notes", json={"work_done": "\u0000"}),
    ]
    statuses = [r.status_code for r in tries]
    # bodies 422, paths and query strings 400, each saying why
    assert statuses == [422, 422, 422, 422, 400, 400, 400, 400, 422], [(r.request.url, r.status_code, r.text[:200])
                                                                      for r in tries]
    assert all("NUL" in r.json()["error"] for r in tries)
    assert httpx.get(f"{pg_collector.url}/healthz").json()["status"] == "ok"
    agent.close()
    eng.close()


def test_login_throttle_under_concurrent_logins_on_postgres(pg: postgres.Postgres) -> None:
    # the same user's form sent several times at once, right and wrong passwords mixed: attempts, failures
    # and successes take the same rows in the same order, so none waits on another for ever (no deadlock)
    from concurrent.futures import ThreadPoolExecutor

    from weibao.collector.access import throttle

    engine = create_state_engine(pg.url)
    migrate(engine)
    lim = throttle.Limits(account_failures=1000, address_failures=1000, window_ms=900_000, lockout_ms=900_000)
    t0 = 1_800_000_000_000

    def login(k: int) -> str:
        at = t0 + k
        if throttle.attempt(engine, "racer-pg", "10.1.1.1", lim, at) is not None:
            return "locked"
        if k % 2:
            throttle.success(engine, "racer-pg", "10.1.1.1", at)
            return "ok"
        throttle.failure(engine, "racer-pg", "10.1.1.1", lim, at)
        return "bad"

    try:
        with ThreadPoolExecutor(8) as pool:
            done = list(pool.map(login, range(200)))
        assert done.count("ok") == 100 and done.count("bad") == 100
    finally:
        engine.dispose()
