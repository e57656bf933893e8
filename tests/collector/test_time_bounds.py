"""Sample times are bounded (issue items 2 and 3), against the real collector under uvicorn.

A sample dated far ahead used to stand as the device's newest reading, so every later ``up=0`` at the
real time was "not after the last one" and no ticket opened; one at the edge of the calendar made
GET /api/v1/devices answer 500 for good. Now more than ``limits.max_future_s`` (300 s) ahead, or older
than the raw retention (30 days), is refused with 422 naming the sample, nothing is stored, and the
device's later samples open their ticket as usual.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.collector.conftest import counts, registration
from tests.peers.collector import CollectorPeer, run_collector

pytestmark = pytest.mark.timeout(120)

AGENT = "site-t"
EDGES = ("9999-12-31T23:59:59-18:00", "0001-01-01T00:00:00+18:00", "9999-12-31T23:59:59.999999+00:00")


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPeer]:
    with run_collector(tmp_path_factory.mktemp("times"), {"contract": {"sweep_interval_s": 0.5}}) as p:
        yield p


@pytest.fixture(scope="module")
def clients(peer: CollectorPeer) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with peer.client(peer.token(AGENT)) as agent, peer.client(peer.token("eng-li", "engineer")) as eng:
        assert agent.put("/api/v1/inventory", json=registration(AGENT, ("t-sw-1", "t-sw-2"))).status_code == 200
        yield agent, eng


def post(agent: httpx.Client, samples: list[dict[str, Any]], events: list[dict[str, Any]] | None = None
         ) -> httpx.Response:
    return agent.post("/api/v1/ingest", json={"batch_id": str(uuid.uuid4()), "agent": AGENT, "samples": samples,
                                              "events": events or []})


def up(device: str, value: float, ts: datetime | str) -> dict[str, Any]:
    return {"device": device, "metric": "up", "value": value, "ts": ts if isinstance(ts, str) else ts.isoformat()}


def test_a_sample_far_ahead_is_refused_and_the_fault_still_opens_a_ticket(
        peer: CollectorPeer, clients: tuple[httpx.Client, httpx.Client]) -> None:
    agent, eng = clients
    now = datetime.now(UTC).replace(microsecond=0)
    assert post(agent, [up("t-sw-1", 1, now - timedelta(minutes=m)) for m in range(10, 0, -1)]).status_code == 200
    before = counts(peer)
    ahead = post(agent, [up("t-sw-1", 1, now - timedelta(seconds=5)), up("t-sw-1", 1, "2099-01-01T00:00:00+08:00")])
    assert ahead.status_code == 422, ahead.text
    assert ahead.json()["reason"] == "bad_time"
    (problem,) = ahead.json()["problems"]
    assert problem["field"] == "samples.1.ts" and "ahead of the collector's clock" in problem["message"]
    ten_min = post(agent, [up("t-sw-1", 1, now + timedelta(minutes=10))])
    assert ten_min.status_code == 422
    assert counts(peer) == before  # the whole batch refused, the valid first sample too
    # the fault at the real time is seen: its ticket opens
    assert post(agent, [up("t-sw-1", 0, now)]).status_code == 200
    deadline = time.monotonic() + 10
    found: list[dict[str, Any]] = []
    while not found and time.monotonic() < deadline:
        found = [t for t in eng.get("/api/v1/tickets", params={"device": "t-sw-1"}).json()["tickets"]]
        time.sleep(0.1)
    assert [(t["rule"], t["state"]) for t in found] == [("down", "open")]
    assert datetime.fromisoformat(found[0]["opened_at"]) == now


def test_a_little_ahead_is_accepted_and_too_old_is_refused(peer: CollectorPeer,
                                                           clients: tuple[httpx.Client, httpx.Client]) -> None:
    agent, _ = clients
    now = datetime.now(UTC)
    assert post(agent, [up("t-sw-2", 1, now + timedelta(seconds=60))]).status_code == 200  # within 300 s
    before = counts(peer)
    old = post(agent, [up("t-sw-2", 1, now - timedelta(days=31))])
    assert old.status_code == 422
    assert "older than the raw retention (30 days)" in old.json()["problems"][0]["message"]
    event = post(agent, [], [{"device": "t-sw-2", "kind": "trap", "ts": (now + timedelta(hours=2)).isoformat(),
                              "data": {}}])
    assert event.status_code == 422
    assert [p["field"] for p in event.json()["problems"]] == ["events.0.ts"]
    assert counts(peer) == before


@pytest.mark.parametrize("edge", EDGES)
def test_edges_of_the_calendar_are_refused_and_every_read_answers(
        peer: CollectorPeer, clients: tuple[httpx.Client, httpx.Client], edge: str) -> None:
    agent, eng = clients
    before = counts(peer)
    r = post(agent, [up("t-sw-2", 1, edge)])
    assert r.status_code == 422, r.text
    assert counts(peer) == before
    assert eng.get("/api/v1/devices").status_code == 200
    for params in ({"from": edge}, {"to": edge}, {"from": EDGES[1], "to": EDGES[0]}):
        s = eng.get("/api/v1/series", params={"device": "t-sw-2", "metric": "up", **params})
        assert s.status_code == 422, s.text
        assert s.json()["problems"][0]["field"] in ("from", "to")
    ok = eng.get("/api/v1/series", params={"device": "t-sw-2", "metric": "up", "from": "1970-01-01T00:00:00Z",
                                           "to": "9998-12-31T00:00:00+00:00"})
    assert ok.status_code == 200 and ok.json()["series"]


def test_devices_still_answer_after_a_restart(peer: CollectorPeer, clients: tuple[httpx.Client, httpx.Client],
                                              tmp_path: Path) -> None:
    from tests.agent.test_daemon import restart

    _, eng = clients
    peer.stop()
    restart(peer)
    listed = eng.get("/api/v1/devices")
    assert listed.status_code == 200
    assert {d["name"] for d in listed.json()["devices"]} == {"t-sw-1", "t-sw-2"}
