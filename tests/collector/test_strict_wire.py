"""Strict wire types (issue items 5 and 9) against the real collector: 4xx naming the field, never a 500.

A label value that is a list or an object once raised ``TypeError: unhashable type`` in the fast parse;
event data nested 1,000 levels a ``RecursionError``; device names with NUL, BEL or ESC were accepted
through the API (the agent's loader refuses them). Each is refused now with the field named, nothing is
stored, and /healthz answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.collector.conftest import AGENT, counts, registration
from tests.peers.collector import CollectorPeer, run_collector

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPeer]:
    with run_collector(tmp_path_factory.mktemp("strict")) as p:
        yield p


@pytest.fixture(scope="module")
def agent(peer: CollectorPeer) -> Iterator[httpx.Client]:
    with peer.client(peer.token(AGENT)) as c:
        assert c.put("/api/v1/inventory", json=registration()).status_code == 200
        yield c


def now() -> str:
    return datetime.now(UTC).isoformat()


def body(samples: list[Any], events: list[Any] | None = None) -> bytes:
    """Built as text: json.dumps itself recurses, and nesting is part of what is sent."""
    import json

    doc = json.dumps({"batch_id": str(uuid.uuid4()), "agent": AGENT, "samples": samples, "events": []})
    if events:
        doc = doc[:-len("[]}")] + "[" + ",".join(events) + "]}"
    return doc.encode()


def good(**over: Any) -> dict[str, Any]:
    return {"device": "core-sw-1", "metric": "if.in_bps", "value": 1.0, "ts": now(), "labels": {"ifName": "Gi0/1"},
            **over}


def deep_event(levels: int) -> str:
    head = f'{{"device": "ups-1", "kind": "trap", "ts": "{now()}", "data": '
    return head + '{"a":' * levels + "{}" + "}" * levels + "}"


@pytest.mark.parametrize(("sample", "field"), [
    (good(labels={"ifName": ["Gi0/1"]}), "samples.1.labels.ifName"),
    (good(labels={"ifName": {"x": 1}}), "samples.1.labels.ifName"),
    (good(device=["core-sw-1"]), "samples.1.device"),
    (good(metric={"m": 1}), "samples.1.metric"),
    (good(device="core\x1b[2J-sw-1"), "samples.1.device"),
    (good(value=True), "samples.1.value"),
    (good(value="1"), "samples.1.value"),
    (good(ts=1764028800), "samples.1.ts"),
    (good(ts="1764028800"), "samples.1.ts"),
])
def test_wrong_types_are_422_naming_the_field(peer: CollectorPeer, agent: httpx.Client, sample: dict[str, Any],
                                              field: str) -> None:
    before = counts(peer)
    r = agent.post("/api/v1/ingest", content=body([good(), sample]))
    assert r.status_code == 422, r.text
    assert field in [p["field"] for p in r.json()["problems"]]
    assert counts(peer) == before
    assert httpx.get(f"{peer.url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("levels", [9, 1000])
def test_event_data_nested_deeply_is_422(peer: CollectorPeer, agent: httpx.Client, levels: int) -> None:
    before = counts(peer)
    r = agent.post("/api/v1/ingest", content=body([good()], [deep_event(levels)]))
    assert r.status_code == 422, r.text
    assert r.json()["problems"] == [{"field": "events.0.data", "message": "Value error, nested deeper than 8 levels"}]
    assert counts(peer) == before
    assert agent.post("/api/v1/ingest", content=body([good()], [deep_event(6)])).status_code == 200


def test_event_data_too_large_is_422(peer: CollectorPeer, agent: httpx.Client) -> None:
    import json

    big = json.dumps({"device": "ups-1", "kind": "config_changed", "ts": now(), "data": {"diff": "+" * 1_100_000}})
    r = agent.post("/api/v1/ingest", content=body([], [big]))
    assert r.status_code == 422, r.text
    assert r.json()["problems"][0]["field"] == "events.0.data"


@pytest.mark.parametrize("name", ["sw\x00nul", "sw\x07bell", "sw\x1b[31mred", "sw 1", "交换机-1", "-sw", ""])
def test_device_names_through_the_api_obey_the_loaders_rules(peer: CollectorPeer, agent: httpx.Client,
                                                             name: str) -> None:
    reg = registration()
    reg["devices"].append({"name": name, "address": "127.0.0.1", "kind": "switch", "category": "backbone"})
    r = agent.put("/api/v1/inventory", json=reg)
    assert r.status_code == 422, r.text
    if "\x00" in name:  # refused before the body is read as JSON: no text may hold a NUL
        assert "NUL" in r.json()["error"]
    else:
        assert r.json()["problems"][0]["field"] == "devices.3.name"
    dep = registration()
    dep["devices"][1]["depends_on"] = name
    assert agent.put("/api/v1/inventory", json=dep).status_code == 422
    names = {d["name"] for d in agent.get("/api/v1/devices").json()["devices"]}
    assert names == {"core-sw-1", "acc-sw-1", "ups-1"}


@pytest.mark.parametrize("value", [1.7e308, -1.7e308, 1e31])
def test_a_value_that_would_overflow_the_rollups_is_422(peer: CollectorPeer, agent: httpx.Client,
                                                       value: float) -> None:
    before = counts(peer)
    r = agent.post("/api/v1/ingest", content=body([good(), good(value=value), good(value=value)]))
    assert r.status_code == 422, r.text
    assert "samples.1.value" in [p["field"] for p in r.json()["problems"]]
    assert counts(peer) == before
    # the largest value allowed, many times over in one bucket, still sums to a finite average
    r = agent.post("/api/v1/ingest", content=body([good(value=1e30, metric="x.big") for _ in range(50)]))
    assert r.status_code == 200, r.text
    series = agent.get("/api/v1/series", params={"device": "core-sw-1", "metric": "x.big"})
    assert series.status_code == 200, series.text
    assert "Infinity" not in series.text and "NaN" not in series.text
    (found,) = series.json()["series"]
    assert found["points"][0]["avg"] == pytest.approx(1e30)
