"""The daily inspection the collector makes from what it stores: the checks of rules/inspection.yaml, the look
of ``weibao inspect``; the round of 2026-11-02 is taken at 08:00 from samples stored through ingest."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.collector.scenarios.conftest import SCENARIO_CONFIG, issue_token
from tests.collector.scenarios.replay import at, register
from tests.peers.collector import CollectorPeer, run_collector
from weibao.collector.auth import Role

pytestmark = [pytest.mark.timeout(300)]
AGENT = "daily-agent"
DEVICES = [
    {"name": "d-srv", "address": "127.0.0.1", "kind": "server", "category": "business", "tags": [], "asset": {}},
    {"name": "d-sw", "address": "127.0.0.2", "kind": "switch", "category": "backbone", "tags": [], "asset": {}},
    {"name": "d-ups", "address": "127.0.0.3", "kind": "ups", "category": "business", "tags": [],
     "asset": {"vendor": "Eaton", "warranty_end": "2026-11-20"}},
]


def s(device: str, metric: str, value: float, ts: datetime, **labels: str) -> dict[str, Any]:
    return {"device": device, "metric": metric, "value": value, "ts": ts.isoformat(), "labels": labels}


def hour_of(start: datetime, uptime_at_start: float, *, cpu: float, sw_up: float) -> list[dict[str, Any]]:
    out = []
    for k in range(12):  # 07:00 .. 07:55
        t = start + timedelta(minutes=5 * k)
        out += [s("d-srv", "up", 1, t), s("d-srv", "icmp.loss_pct", 0, t), s("d-srv", "cpu.util_pct", cpu, t),
                s("d-srv", "disk.util_pct", 97, t, mount="/var"),
                s("d-srv", "sys.uptime_s", uptime_at_start + 300 * k, t),
                s("d-sw", "up", sw_up, t), s("d-sw", "icmp.loss_pct", 100 if sw_up == 0 else 0, t),
                s("d-ups", "up", 1, t), s("d-ups", "ups.on_battery", 1 if sw_up == 0 else 0, t),
                s("d-ups", "ups.battery_charge_pct", 45 if sw_up == 0 else 100, t)]
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CollectorPeer, httpx.Client]]:
    with run_collector(tmp_path_factory.mktemp("daily"), SCENARIO_CONFIG) as peer, \
            peer.client(issue_token(peer, AGENT, Role.AGENT)) as agent, \
            peer.client(issue_token(peer, "eng-zhao", Role.ENGINEER)) as engineer:
        register(agent, AGENT, DEVICES)
        # the day before: all well, d-srv up for 10 days
        day_before = hour_of(at("2026-11-01 07:00"), 864000, cpu=20, sw_up=1)
        # the day: d-srv restarted (uptime 1 h), busy; d-sw down; the UPS on battery, 45 % charge
        day = hour_of(at("2026-11-02 07:00"), 3600, cpu=96, sw_up=0)
        events = [{"device": "d-sw", "kind": "config_changed", "ts": "2026-11-01T20:00:00+08:00",
                   "data": {"added": 2, "removed": 2, "diff": "-snmp-server community Secr3tComm\n+x"}}]
        for body in ({"samples": day_before, "events": []}, {"samples": day, "events": events}):
            r = agent.post("/api/v1/ingest", json={"batch_id": str(uuid.uuid4()), "agent": AGENT, **body})
            assert r.status_code == 200, r.text
        yield peer, engineer


def test_the_stored_round_gives_the_findings(lab: tuple[CollectorPeer, httpx.Client]) -> None:
    r = lab[1].get("/api/v1/reports/daily", params={"period": "2026-11-02"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["at"] == "2026-11-02T08:00:00+08:00"
    assert doc["summary"]["checked"] == 3
    # d-sw answers nothing: unreachable; d-srv and d-ups have findings above "info"
    assert (doc["summary"]["unreachable"], doc["summary"]["with_findings"], doc["summary"]["healthy"]) == (1, 2, 0)
    found = {(f["device"], f["rule"], f["severity"]) for f in doc["findings"]}
    assert {("d-srv", "cpu.high", "major"),        # 96 >= 95
            ("d-srv", "disk.high", "critical"),    # /var 97 >= 95
            ("d-srv", "rebooted", "major"),        # 3,600 s + 55 min now, 864,000 s + 55 min a day ago
            ("d-sw", "unreachable", "critical"),
            ("d-sw", "config.changed", "minor"),   # 2026-11-01 20:00, within the day before the round
            ("d-ups", "ups.on_battery", "critical"),
            ("d-ups", "ups.battery_charge", "critical"),  # 45 < 50
            ("d-ups", "warranty.expiring", "minor")} <= found, found
    assert not any(f["device"] == "d-srv" and f["rule"].startswith("ups") for f in doc["findings"])


def test_the_page_looks_like_weibao_inspect_and_masks_configuration_secrets(
        lab: tuple[CollectorPeer, httpx.Client]) -> None:
    peer, engineer = lab
    r = engineer.get("/api/v1/reports/daily", params={"period": "2026-11-02", "format": "html"})
    assert r.status_code == 200, r.text
    html = r.text
    assert "设备日常巡检报告" in html and "d-srv" in html and "d-ups" in html
    assert "Secr3tComm" not in html
    listed = {(g["kind"], g["period"]) for g in engineer.get("/api/v1/reports").json()["reports"]}
    assert ("daily", "2026-11-02") in listed
    assert (peer.data_dir / "reports" / "daily" / "2026-11-02" / "inspection-2026-11-02.html").is_file()
    r = engineer.get("/api/v1/reports/daily", params={"period": "2026-11-02", "format": "xlsx"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "format"
