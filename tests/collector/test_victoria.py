"""The InfluxDB line-protocol backend against a real VictoriaMetrics, read back through /api/v1/export."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.collector.conftest import AGENT, CST, HISTORY_DAYS, batch, counts, dump, registration, sample
from tests.peers import victoria
from tests.peers.collector import CollectorPeer, run_collector

pytestmark = pytest.mark.skipif(not victoria.available(), reason="victoria-metrics is not installed")

T0 = datetime(2026, 11, 25, 9, 0, 0, 250000, tzinfo=CST)


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[victoria.Victoria]:
    with victoria.run_victoria(tmp_path_factory.mktemp("vm")) as server:
        yield server


@pytest.fixture(scope="module")
def influx_collector(tmp_path_factory: pytest.TempPathFactory, vm: victoria.Victoria) -> Iterator[CollectorPeer]:
    cfg = {"tsdb": {"backend": "influxdb",
                    "influxdb": {"url": vm.url, "org": "weibao", "bucket": "weibao", "token": "unused-by-vm"}},
           **HISTORY_DAYS}
    with run_collector(Path(tmp_path_factory.mktemp("influx")), cfg) as peer:
        yield peer


@pytest.fixture(scope="module")
def client(influx_collector: CollectorPeer) -> Iterator[httpx.Client]:
    tok = influx_collector.token(AGENT)
    with influx_collector.client(tok) as c:
        assert c.put("/api/v1/inventory", json=registration()).status_code == 200
        yield c


def export(vm: victoria.Victoria, match: str, expect: int) -> list[dict[str, Any]]:
    """Series from VictoriaMetrics' export, waiting until ``expect`` points are visible (bounded)."""
    deadline = time.monotonic() + 20
    while True:
        httpx.get(f"{vm.url}/internal/force_flush", timeout=10)
        r = httpx.get(f"{vm.url}/api/v1/export", params={"match[]": match}, timeout=10)
        r.raise_for_status()
        series = [json.loads(line) for line in r.text.splitlines() if line.strip()]
        if sum(len(s["values"]) for s in series) >= expect or time.monotonic() > deadline:
            return series
        time.sleep(0.2)


def test_samples_reach_victoria_as_line_protocol(vm: victoria.Victoria, influx_collector: CollectorPeer,
                                                  client: httpx.Client) -> None:
    values = [0.5, 1.25, 3.0, 2.5]
    times = [T0 + timedelta(seconds=10 * i) for i in range(len(values))]
    doc = batch([sample("core-sw-1", "icmp.rtt_ms", v, t) for v, t in zip(values, times, strict=True)]
                + [sample("ups-1", "temp.c", 24.5, T0, sensor="inlet air, rack 3")])
    r = client.post("/api/v1/ingest", content=dump(doc))
    assert r.status_code == 200, r.text

    series = export(vm, '{__name__=~"icmp.rtt_ms.*"}', len(values))
    assert len(series) == 1
    s = series[0]
    assert s["metric"] == {"__name__": "icmp.rtt_ms_value", "device": "core-sw-1"}
    assert s["values"] == values
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert s["timestamps"] == [(t - epoch) // timedelta(milliseconds=1) for t in times]

    temp = export(vm, '{__name__="temp.c_value"}', 1)
    assert temp[0]["metric"]["sensor"] == "inlet air, rack 3"
    assert temp[0]["metric"]["device"] == "ups-1"

    # a duplicate adds nothing to the rollups, and the raw points stay one per time
    before = counts(influx_collector)
    again = client.post("/api/v1/ingest", content=dump(doc))
    assert again.json()["duplicate"] is True
    assert counts(influx_collector) == before
    assert export(vm, '{__name__=~"icmp.rtt_ms.*"}', len(values))[0]["values"] == values

    # rollups are kept by the collector whatever the raw backend
    r = client.get("/api/v1/series", params={"device": "core-sw-1", "metric": "icmp.rtt_ms", "step": 300,
                                             "from": (T0 - timedelta(hours=1)).isoformat(),
                                             "to": (T0 + timedelta(hours=1)).isoformat()})
    pts = r.json()["series"][0]["points"]
    assert [(p["min"], p["max"], p["last"], p["count"]) for p in pts] == [(min(values), max(values), values[-1], 4)]


def test_backend_away_is_503_and_the_batch_is_not_recorded(vm: victoria.Victoria, influx_collector: CollectorPeer,
                                                           client: httpx.Client) -> None:
    vm.stop()
    before = counts(influx_collector)
    r = client.post("/api/v1/ingest", content=dump(batch([sample("core-sw-1", "up", 1.0, T0)])))
    assert r.status_code == 503
    assert counts(influx_collector) == before  # no batch id: the agent's retry will be applied
