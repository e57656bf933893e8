"""Generated bodies against the real collector's ingest and inventory (hypothesis): whatever arrives, the
answer is 2xx or 4xx (never 5xx), a refusal leaves the store exactly as it was, and /healthz stays fine.

The bodies start from valid shapes and then replace fields with any JSON value (lists, objects, huge
numbers, control characters, times at the edges of the calendar), or are not JSON at all. Example
counts are bounded so the module stays within a few tens of seconds.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.collector.conftest import state_path
from tests.peers.collector import CollectorPeer, run_collector

pytestmark = pytest.mark.timeout(300)

AGENT, OTHER = "prop-a", "prop-b"
NAMES = ("p-sw-1", "p-sw-2", "p-ups-1")
OTHERS = ("q-sw-1",)
TABLES = ("batches", "ts_samples", "rollups", "events", "devices", "series", "device_moves")
SETTINGS = settings(max_examples=120, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPeer]:
    with run_collector(tmp_path_factory.mktemp("props"), {"limits": {"max_batch_bytes": 512 * 1024}}) as p:
        yield p


def _reg(agent: str, names: tuple[str, ...]) -> dict[str, Any]:
    return {"site": "lab", "agent": agent, "devices": [
        {"name": n, "address": "127.0.0.1", "kind": "switch", "category": "backbone"} for n in names]}


@pytest.fixture(scope="module")
def clients(peer: CollectorPeer) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with peer.client(peer.token(AGENT)) as a, peer.client(peer.token(OTHER)) as b:
        assert a.put("/api/v1/inventory", json=_reg(AGENT, NAMES)).status_code == 200
        assert b.put("/api/v1/inventory", json=_reg(OTHER, OTHERS)).status_code == 200
        yield a, b


def snapshot(peer: CollectorPeer) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables ingest and registration write, read from the collector's own file."""
    conn = sqlite3.connect(f"file:{state_path(peer)}?mode=ro", uri=True, timeout=10)
    try:
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)  # noqa: S608  # fixed names
                for t in TABLES if t in have}
    finally:
        conn.close()


# -- strategies ---------------------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
offsets = st.integers(min_value=-18 * 60, max_value=18 * 60).map(lambda m: timezone(timedelta(minutes=m)))
recent = st.integers(min_value=-3600, max_value=120).map(lambda s: datetime.now(UTC) + timedelta(seconds=s))
anytime = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets)
times = st.one_of(recent.map(lambda t: t.isoformat()), anytime.map(lambda t: t.isoformat()),
                  st.sampled_from(["9999-12-31T23:59:59-18:00", "0001-01-01T00:00:00+18:00",
                                   "2026-11-25T08:00:00", "2026-13-01T00:00:00Z", ""]))
devices = st.one_of(st.sampled_from(NAMES + OTHERS), st.text(max_size=20),
                    st.sampled_from(["p-sw-1\x1b[2J", "p\x00", "ghost-1"]))
metrics = st.one_of(st.sampled_from(["up", "icmp.rtt_ms", "if.in_bps"]), st.text(max_size=12))
labels = st.one_of(st.dictionaries(st.sampled_from(["ifName", "mount", "bad key"]),
                                   st.one_of(st.text(max_size=10), json_values), max_size=2), json_values)


@st.composite
def samples(draw: st.DrawFn) -> dict[str, Any]:
    s: dict[str, Any] = {"device": draw(devices), "metric": draw(metrics),
                         "value": draw(st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=32),
                                                 st.integers(-(2**60), 2**60), json_values)),
                         "ts": draw(times), "labels": draw(labels)}
    if draw(st.booleans()):  # any one field of any JSON type, or one too many
        key = draw(st.sampled_from([*s, "extra"]))
        s[key] = draw(json_values)
    return s


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    return {"device": draw(devices), "kind": draw(st.sampled_from(["trap", "rebooted", "nope"])),
            "ts": draw(times), "data": draw(st.one_of(st.dictionaries(st.text(max_size=6), json_values, max_size=3),
                                                       json_values))}


@st.composite
def batches(draw: st.DrawFn) -> bytes:
    doc: dict[str, Any] = {"batch_id": draw(st.one_of(st.uuids().map(str), st.text(max_size=10))),
                           "agent": draw(st.sampled_from([AGENT, AGENT, OTHER, "x y"])),
                           "samples": draw(st.lists(samples(), max_size=6)),
                           "events": draw(st.lists(events(), max_size=2))}
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.sampled_from([*doc, "extra"]))] = draw(json_values)
    text = json.dumps(doc)
    if draw(st.integers(0, 19)) == 0:  # not JSON at all, or cut short
        return draw(st.one_of(st.binary(max_size=64), st.just(text[: len(text) // 2]).map(str.encode)))
    return text.encode()


@st.composite
def registrations(draw: st.DrawFn) -> dict[str, Any]:
    devs = []
    for _ in range(draw(st.integers(0, 3))):
        d: dict[str, Any] = {"name": draw(devices), "address": draw(st.sampled_from(["127.0.0.1", "::1", "h-1"])),
                             "kind": draw(st.sampled_from(["switch", "ups", "toaster"])),
                             "category": draw(st.sampled_from(["backbone", "business", "x"]))}
        if draw(st.booleans()):
            d[draw(st.sampled_from(["depends_on", "tags", "asset", "snmp", "group", "extra"]))] = draw(json_values)
        devs.append(d)
    doc: dict[str, Any] = {"site": draw(st.one_of(st.just("lab"), st.text(max_size=10))),
                           "agent": draw(st.sampled_from([AGENT, AGENT, OTHER])), "devices": devs}
    if draw(st.booleans()):
        doc[draw(st.sampled_from(["site", "agent", "devices", "extra"]))] = draw(json_values)
    return doc


# -- properties -----------------------------------------------------------------------------------------------

def _holds(peer: CollectorPeer, r: httpx.Response, before: dict[str, list[tuple[Any, ...]]]) -> None:
    assert 200 <= r.status_code < 500, f"{r.status_code}: {r.text[:500]}"
    if r.status_code >= 400:
        assert snapshot(peer) == before, f"refused ({r.status_code}: {r.text[:200]}) yet the store changed"
        assert isinstance(r.json().get("error"), str)
    assert httpx.get(f"{peer.url}/healthz", timeout=10).status_code == 200


@SETTINGS
@given(body=batches())
def test_ingest_answers_2xx_or_4xx_and_a_refusal_changes_nothing(
        peer: CollectorPeer, clients: tuple[httpx.Client, httpx.Client], body: bytes) -> None:
    agent, _ = clients
    before = snapshot(peer)
    _holds(peer, agent.post("/api/v1/ingest", content=body), before)


@SETTINGS
@given(doc=registrations(), as_other=st.booleans())
def test_inventory_answers_2xx_or_4xx_and_a_refusal_changes_nothing(
        peer: CollectorPeer, clients: tuple[httpx.Client, httpx.Client], doc: dict[str, Any],
        as_other: bool) -> None:
    agent, other = clients
    before = snapshot(peer)
    r = (other if as_other else agent).put("/api/v1/inventory", content=json.dumps(doc).encode())
    _holds(peer, r, before)
    # whatever was registered, the other agent's device is still its own
    owners = {d["name"]: d["agent"] for d in other.get("/api/v1/devices").json()["devices"]}
    assert owners.get("q-sw-1") == OTHER


def test_the_generators_reach_both_answers(peer: CollectorPeer, clients: tuple[httpx.Client, httpx.Client]) -> None:
    """A valid example of each kind is accepted: the properties above are not only about refusals."""
    agent, _ = clients
    ok = {"batch_id": str(uuid.uuid4()), "agent": AGENT, "events": [],
          "samples": [{"device": "p-sw-1", "metric": "up", "value": 1.0, "ts": datetime.now(UTC).isoformat(),
                       "labels": {}}]}
    assert agent.post("/api/v1/ingest", json=ok).status_code == 200
    assert agent.put("/api/v1/inventory", json=_reg(AGENT, NAMES)).status_code == 200
