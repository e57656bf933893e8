"""Devices belong to the agent that registered them (issue item 4), against the real collector.

With agent2's token, agent1's device can neither be re-registered (another site, kind or contract
category) nor fed samples or events: 403 naming the device, nothing changed. Moving it is an admin's
``weibao devices move``, recorded and logged; after it the new agent's registration and samples count,
and the old agent's are refused, also by a collector that had the old owner cached.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.collector.conftest import counts, registration, state_path
from tests.peers.collector import CollectorPeer, run_collector, weibao

pytestmark = pytest.mark.timeout(120)

A1, A2 = "site-a", "site-b"


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPeer]:
    with run_collector(tmp_path_factory.mktemp("owners")) as p:
        yield p


@pytest.fixture(scope="module")
def agents(peer: CollectorPeer) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with peer.client(peer.token(A1)) as one, peer.client(peer.token(A2)) as two:
        assert one.put("/api/v1/inventory", json=registration(A1, ("own-sw-1", "own-ups-1"))).status_code == 200
        yield one, two


def batch(agent: str, device: str, *, event: bool = False) -> dict[str, Any]:
    ts = datetime.now(UTC).isoformat()
    samples = [] if event else [{"device": device, "metric": "up", "value": 1.0, "ts": ts}]
    events = [{"device": device, "kind": "trap", "ts": ts, "data": {}}] if event else []
    return {"batch_id": str(uuid.uuid4()), "agent": agent, "samples": samples, "events": events}


def listed(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in client.get("/api/v1/devices").json()["devices"]}


def hijack(name: str = "own-sw-1") -> dict[str, Any]:
    doc = registration(A2, ("b-sw-9",))
    doc["site"] = "elsewhere"
    doc["devices"].append({"name": name, "address": "127.0.0.9", "kind": "router", "category": "business"})
    return doc


def test_another_agents_registration_of_a_device_is_refused(peer: CollectorPeer,
                                                            agents: tuple[httpx.Client, httpx.Client]) -> None:
    one, two = agents
    before = listed(one)
    r = two.put("/api/v1/inventory", json=hijack())
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == "foreign_device"
    assert "own-sw-1" in r.json()["error"] and "site-a" in r.json()["error"]
    after = listed(one)
    assert after == before  # site, kind, category and agent as agent1 registered them; b-sw-9 not added
    assert (after["own-sw-1"]["site"], after["own-sw-1"]["kind"], after["own-sw-1"]["category"]) == \
        ("lab", "switch", "backbone")


@pytest.mark.parametrize("event", [False, True])
def test_another_agents_samples_and_events_are_refused(peer: CollectorPeer,
                                                       agents: tuple[httpx.Client, httpx.Client],
                                                       event: bool) -> None:
    one, two = agents
    assert two.put("/api/v1/inventory", json=registration(A2, ("b-sw-1",))).status_code == 200
    before = counts(peer)
    doc = batch(A2, "own-sw-1", event=event)
    doc["samples"] += batch(A2, "b-sw-1")["samples"]
    r = two.post("/api/v1/ingest", json=doc)
    assert r.status_code == 403, r.text
    assert [p["message"] for p in r.json()["problems"]] == ["'own-sw-1' belongs to agent 'site-a'"]
    assert counts(peer) == before
    assert one.post("/api/v1/ingest", json=batch(A1, "own-sw-1", event=event)).status_code == 200


def test_engineers_do_not_register_devices(peer: CollectorPeer) -> None:
    with peer.client(peer.token("eng-zhao", "engineer")) as eng:
        assert eng.put("/api/v1/inventory", json=registration(A1, ("own-sw-1",))).status_code == 403


def test_an_admin_moves_a_device_and_the_old_owner_loses_it(peer: CollectorPeer,
                                                            agents: tuple[httpx.Client, httpx.Client]) -> None:
    one, two = agents
    # the collector has own-sw-1 -> site-a cached from the batches above
    assert one.post("/api/v1/ingest", json=batch(A1, "own-sw-1")).status_code == 200
    out = weibao("devices", "move", "own-sw-1", "--to", A2, "--config", str(peer.config_path))
    assert "moved from agent site-a to agent site-b" in out.stderr
    refused = one.post("/api/v1/ingest", json=batch(A1, "own-sw-1"))
    assert refused.status_code == 403, refused.text
    assert "belong to agent(s) site-b" in refused.json()["error"]
    assert two.put("/api/v1/inventory", json=hijack()).status_code == 200
    assert two.post("/api/v1/ingest", json=batch(A2, "own-sw-1")).status_code == 200
    now = listed(two)["own-sw-1"]
    assert "own-sw-1" not in listed(one)  # an agent lists the devices it registered only
    assert (now["agent"], now["site"], now["kind"], now["active"]) == (A2, "elsewhere", "router", True)
    # recorded with who did it, and logged by the collector that noticed
    conn = sqlite3.connect(f"file:{state_path(peer)}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT device, from_agent, to_agent, actor FROM device_moves").fetchall()
    finally:
        conn.close()
    assert [r[:3] for r in rows] == [("own-sw-1", A1, A2)] and rows[0][3]
    assert "device own-sw-1 now belongs to agent site-b (moved from site-a by" in peer.log()
    table = weibao("devices", "list", "--config", str(peer.config_path)).stdout
    assert any(line.split("\t")[:2] == ["own-sw-1", A2] for line in table.splitlines())
    unknown = weibao("devices", "move", "no-such-sw", "--to", A2, "--config", str(peer.config_path), check=False)
    assert unknown.returncode == 1 and "no agent registered" in unknown.stderr
