"""A collector restart rebuilds the contract engine from what the stores kept, whatever the store.

The history before the restart lies beyond the raw samples the replay reads (``replay_raw_hours``), or the
raw samples are in VictoriaMetrics, which is never read back: then the replay builds the day from the
5-minute rollups. A per-day row that needs the time before the restart must still promote the fault that
comes after it.

By hand (rules/contract.yaml, category ``mis``: "全网性管理信息系统中断一天累计时长 >= 2 h" is level 2, any hours):
yesterday 10:00-11:10 down (70 min, level 3), restart, 14:00-15:00 down: 70 + 50 min = 2 h at 14:50, so the
second ticket is level 2 from 14:50; without the replayed 70 min it would stay level 3 (110 min in all).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.peers import victoria
from tests.peers.collector import CollectorPeer, run_collector

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CST = ZoneInfo("Asia/Shanghai")
AGENT = "site-replay"
DEVICE = "mis-app-1"
STEP = timedelta(seconds=60)


def registration() -> dict[str, Any]:
    return {"site": "lab", "agent": AGENT, "devices": [
        {"name": DEVICE, "address": "127.0.0.1", "kind": "server", "category": "mis", "icmp": {"count": 3},
         "schedule": {"icmp_s": 60}}]}


def at(day: date, hh: int, mm: int) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=CST)


def history(day: date, start: tuple[int, int], end: tuple[int, int], down: tuple[tuple[int, int], tuple[int, int]]
            ) -> list[dict[str, Any]]:
    """One ``up`` sample a minute from ``start`` to ``end`` (exclusive), 0 inside ``down``."""
    out = []
    t, stop = at(day, *start), at(day, *end)
    lo, hi = at(day, *down[0]), at(day, *down[1])
    while t < stop:
        out.append({"device": DEVICE, "metric": "up", "value": 0.0 if lo <= t < hi else 1.0, "ts": t.isoformat()})
        t += STEP
    return out


def ship(c: httpx.Client, samples: list[dict[str, Any]]) -> None:
    for k in range(0, len(samples), 60):
        r = c.post("/api/v1/ingest", json={"batch_id": str(uuid.uuid4()), "agent": AGENT,
                                           "samples": samples[k:k + 60], "events": []})
        assert r.status_code == 200, r.text


def ready(c: httpx.Client) -> None:
    deadline = time.monotonic() + 60
    while not c.get("/api/v1/contract").json().get("ready"):
        assert time.monotonic() < deadline, "the engine never finished its start-up replay"
        time.sleep(0.1)


def settled(c: httpx.Client, pred: Any, what: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        tickets: list[dict[str, Any]] = c.get("/api/v1/tickets", params={"device": DEVICE}).json()["tickets"]
        if pred(tickets):
            return tickets
        assert time.monotonic() < deadline, f"{what}: {tickets}"
        time.sleep(0.1)


@pytest.fixture(params=["sqlite-rollups", "sqlite-raw", "victoria"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    contract = {"sweep_interval_s": 0.5}
    with ExitStack() as stack:
        if request.param == "victoria":
            if not victoria.available():
                pytest.skip("victoria-metrics is not installed")
            vm = stack.enter_context(victoria.run_victoria(tmp_path / "vm"))
            yield {"contract": contract, "tsdb": {"backend": "influxdb", "influxdb": {
                "url": vm.url, "org": "weibao", "bucket": "weibao", "token": "unused-by-vm"}}}
        else:
            # 0 h: nothing is read raw, the whole day comes from the rollups; 72 h: all of it raw
            hours = 0 if request.param == "sqlite-rollups" else 72
            yield {"contract": {**contract, "replay_raw_hours": hours}}


def test_a_per_day_row_counts_the_time_before_the_restart(tmp_path: Path, config: dict[str, Any]) -> None:
    day = (datetime.now(CST) - timedelta(days=1)).date()
    work = tmp_path / "collector"
    work.mkdir()
    with run_collector(work, config) as peer:
        tokens = {"agent": peer.token(AGENT), "eng": peer.token("wang", "engineer")}
        with peer.client(tokens["agent"]) as agent, peer.client(tokens["eng"]) as eng:
            assert agent.put("/api/v1/inventory", json=registration()).status_code == 200
            ship(agent, history(day, (9, 0), (12, 0), ((10, 0), (11, 10))))
            settled(eng, lambda ts: len(ts) == 1 and ts[0]["state"] == "restored", "the first outage's ticket")
    _restarted(work, config, tokens, day)


def _restarted(work: Path, config: dict[str, Any], tokens: dict[str, str], day: date) -> None:
    with run_collector(work, config) as peer, peer.client(tokens["agent"]) as agent, \
            peer.client(tokens["eng"]) as eng:
        ready(eng)
        ship(agent, history(day, (12, 0), (16, 0), ((14, 0), (15, 0))))
        tickets = settled(eng, lambda ts: len(ts) == 2 and all(t["state"] == "restored" for t in ts),
                          "both outages' tickets")
        _check(tickets, day, peer)


def _check(tickets: list[dict[str, Any]], day: date, peer: CollectorPeer) -> None:
    first, second = sorted(tickets, key=lambda t: t["opened_at"])
    assert (first["level"], first["opened_at"], first["restored_at"]) == (
        3, at(day, 10, 0).isoformat(), at(day, 11, 10).isoformat())
    assert (second["opened_at"], second["restored_at"]) == (at(day, 14, 0).isoformat(), at(day, 15, 0).isoformat())
    assert second["level"] == 2, f"the 70 min before the restart were not counted:\n{peer.log()[-3000:]}"
    promotions = [e for e in second["events"] if e["kind"] == "promote"]
    assert [(e["at"], e["to_level"]) for e in promotions] == [(at(day, 14, 50).isoformat(), 2)]
