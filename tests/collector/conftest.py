"""Fixtures for collector tests: the real collector (uvicorn subprocess) and helpers to talk to it."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.peers.collector import CollectorPeer, run_collector

AGENT = "site-a"
# for tests that send samples at fixed dates: the collector refuses samples older than its raw retention
HISTORY_DAYS = {"retention": {"raw_days": 3650}}
DEVICES = ("core-sw-1", "acc-sw-1", "ups-1")
CST = timezone(timedelta(hours=8))


def registration(agent: str = AGENT, devices: tuple[str, ...] = DEVICES) -> dict[str, Any]:
    return {"site": "lab", "agent": agent, "devices": [
        {"name": d, "address": "127.0.0.1", "kind": "ups" if d.startswith("ups") else "switch",
         "category": "backbone", "tags": ["t"], "asset": {"vendor": "Huawei"}} for d in devices]}


def sample(device: str, metric: str, value: float, ts: datetime, **labels: str) -> dict[str, Any]:
    return {"device": device, "metric": metric, "value": value, "ts": ts.isoformat(), "labels": labels}


def batch(samples: list[dict[str, Any]], events: list[dict[str, Any]] | None = None,
          agent: str = AGENT) -> dict[str, Any]:
    return {"batch_id": str(uuid.uuid4()), "agent": agent, "samples": samples, "events": events or []}


def counts(peer: CollectorPeer) -> dict[str, int]:
    """Rows in the collector's SQLite state database, read directly from the file."""
    conn = sqlite3.connect(peer.data_dir / "state.db")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # noqa: S608  # fixed names
                for t in ("batches", "ts_samples", "rollups", "events") if t in tables}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPeer]:
    work = tmp_path_factory.mktemp("collector")
    with run_collector(work, {"limits": {"max_batch_bytes": 256 * 1024, "max_batch_samples": 1000},
                              **HISTORY_DAYS}) as peer:
        yield peer


@pytest.fixture(scope="module")
def token(collector: CollectorPeer) -> str:
    tok = collector.token(AGENT)
    r = httpx.put(f"{collector.url}/api/v1/inventory", json=registration(),
                  headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.text
    return tok


@pytest.fixture()
def http(collector: CollectorPeer, token: str) -> Iterator[httpx.Client]:
    with collector.client(token) as client:
        yield client


def dump(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def state_path(peer: CollectorPeer) -> Path:
    return peer.data_dir / "state.db"
