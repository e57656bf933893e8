"""Evaluating one round: each check at, just below and just above its limits, as written in the rules file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.agent.inspection.factory import (
    RULES_FILE,
    T0,
    config_changed,
    devices,
    failed,
    icmp_dead,
    icmp_ok,
    raw_rules,
    sample,
    snmp,
)
from weibao.agent.inspection import DeviceStatus, History, Inspection, Severity, inspect, load_inspection_rules
from weibao.agent.inventory import Device
from weibao.core.inspection.rules import InspectionRules
from weibao.core.model import Event, EventKind, PollResult, Protocol

WORST_FIRST = ["critical", "major", "minor", "info"]
LABELS = {"disk.util_pct": {"mount": "/var"}, "if.in_errors_ps": {"ifName": "GigabitEthernet0/1"},
          "if.out_errors_ps": {"ifName": "GigabitEthernet0/2"}, "temp.c": {"sensor": "inlet"}}
DEVICE_OF_KIND = {"ups": "ups-1", "server": "srv-1", "switch": "core-sw-1"}


@pytest.fixture(scope="module")
def rules() -> InspectionRules:
    return load_inspection_rules(RULES_FILE)


@pytest.fixture(scope="module")
def devs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Device]:
    return devices(tmp_path_factory.mktemp("inv"))


def run(devs: dict[str, Device], rules: InspectionRules, results: list[PollResult],
        history: History | None = None) -> Inspection:
    return inspect(list(devs.values()), results, rules, history or History.empty(), now=T0 + timedelta(minutes=5))


def cmp(value: float, op: str, limit: float) -> bool:
    return {">=": value >= limit, ">": value > limit, "<=": value <= limit, "<": value < limit,
            "==": value == limit}[op]


def threshold_cases() -> list[Any]:
    cases = []
    for rid, raw in raw_rules().items():
        if raw["check"] != "threshold":
            continue
        for sev, limit in raw["levels"].items():
            step = max(abs(limit) * 0.01, 0.001)
            for where, value in (("at", limit), ("below", limit - step), ("above", limit + step)):
                expected = next((s for s in WORST_FIRST if s in raw["levels"]
                                 and cmp(value, raw["op"], raw["levels"][s])), None)
                cases.append(pytest.param(rid, value, expected, id=f"{rid}-{sev}-{where}"))
    return cases


@pytest.mark.parametrize(("rule_id", "value", "expected"), threshold_cases())
def test_threshold_checks(devs: dict[str, Device], rules: InspectionRules, rule_id: str, value: float,
                          expected: str | None) -> None:
    raw = raw_rules()[rule_id]
    device = DEVICE_OF_KIND[raw.get("kinds", ["switch"])[0]]
    labels = LABELS.get(raw["metric"], {})
    if raw["metric"].startswith("icmp."):
        results = [PollResult(device, Protocol.ICMP, samples=[sample(device, "up", 1),
                                                              sample(device, raw["metric"], value)])]
    else:
        results = [icmp_ok(device), snmp(device, [sample(device, raw["metric"], value, T0, **labels)])]
    found = [f for f in run(devs, rules, results).findings if f.rule == rule_id]
    if expected is None:
        assert found == []
        return
    [f] = found
    assert (f.device, f.severity.value, f.metric) == (device, expected, raw["metric"])
    assert f.label == " ".join(labels.values())
    assert device in f.message.zh and device in f.message.en
    assert f.recommendation.zh and f.recommendation.en


def test_disk_finding_text_names_mount_value_and_threshold(devs: dict[str, Device], rules: InspectionRules) -> None:
    limit = raw_rules()["disk.high"]["levels"]["major"]
    results = [icmp_ok("srv-1"), snmp("srv-1", [sample("srv-1", "disk.util_pct", limit + 2, mount="/data"),
                                                 sample("srv-1", "disk.util_pct", 10, mount="/")])]
    insp = run(devs, rules, results)
    [f] = [f for f in insp.findings if f.rule == "disk.high"]
    assert f.severity is Severity.MAJOR
    assert f"{limit + 2}" in f.message.zh and "/data" in f.message.zh and f"{limit}" in f.message.zh
    assert "/data" in f.recommendation.en
    row = next(d for d in insp.devices if d.name == "srv-1")
    assert (row.figures.disk_max_pct, row.figures.disk_max_mount) == (limit + 2, "/data")
    assert row.status is DeviceStatus.FINDINGS


def test_kinds_filter_keeps_ups_checks_off_other_devices(devs: dict[str, Device], rules: InspectionRules) -> None:
    results = [icmp_ok("srv-1"), snmp("srv-1", [sample("srv-1", "ups.on_battery", 1)])]
    assert [f for f in run(devs, rules, results).findings if f.device == "srv-1"] == []
    results = [icmp_ok("ups-1"), snmp("ups-1", [sample("ups-1", "ups.on_battery", 1)])]
    [f] = [f for f in run(devs, rules, results).findings if f.device == "ups-1"]
    assert (f.rule, f.severity) == ("ups.on_battery", Severity.CRITICAL)


def test_unreachable_device(devs: dict[str, Device], rules: InspectionRules) -> None:
    results = [icmp_dead("core-sw-1"), failed("core-sw-1", Protocol.SNMP, "request timed out after 2 s"),
               icmp_ok("srv-1"), icmp_ok("ups-1")]
    insp = run(devs, rules, results)
    row = next(d for d in insp.devices if d.name == "core-sw-1")
    assert row.status is DeviceStatus.UNREACHABLE
    mine = [f for f in insp.findings if f.device == "core-sw-1"]
    # no loss finding or monitoring finding on top of the outage itself
    assert [f.rule for f in mine] == ["unreachable"]
    assert mine[0].severity.value == raw_rules()["unreachable"]["severity"]
    assert "request timed out" in mine[0].message.en
    assert insp.summary.unreachable == 1
    assert [(e.device, e.protocol) for e in insp.errors] == [("core-sw-1", "snmp")]


def test_device_without_any_result_is_unreachable(devs: dict[str, Device], rules: InspectionRules) -> None:
    insp = run(devs, rules, [icmp_ok("srv-1"), icmp_ok("ups-1")])
    [f] = [f for f in insp.findings if f.device == "core-sw-1"]
    assert f.rule == "unreachable"
    assert "no data" in f.message.en


def test_snmp_answering_without_icmp_is_reachable(devs: dict[str, Device], rules: InspectionRules) -> None:
    results = [icmp_dead("ups-1"), snmp("ups-1", [sample("ups-1", "ups.battery_charge_pct", 100)])]
    insp = run(devs, rules, results)
    row = next(d for d in insp.devices if d.name == "ups-1")
    assert row.status is not DeviceStatus.UNREACHABLE
    assert "unreachable" not in [f.rule for f in insp.findings if f.device == "ups-1"]


def test_snmp_failing_while_ping_answers_is_a_monitoring_problem(devs: dict[str, Device],
                                                                   rules: InspectionRules) -> None:
    results = [icmp_ok("core-sw-1"), failed("core-sw-1", Protocol.SNMP, "authentication failure (usmStats)"),
               PollResult("core-sw-1", Protocol.SSH, samples=[sample("core-sw-1", "ssh.up", 1)])]
    insp = run(devs, rules, results)
    [f] = [f for f in insp.findings if f.device == "core-sw-1"]
    assert f.rule == "monitoring.protocol_failing"
    assert "SNMP" in f.message.en and "authentication failure" in f.message.zh
    assert next(d for d in insp.devices if d.name == "core-sw-1").status is DeviceStatus.FINDINGS


def test_config_changed_event_gives_finding_and_diff(devs: dict[str, Device], rules: InspectionRules) -> None:
    diff = "--- before\n+++ after\n@@ -1,2 +1,2 @@\n-vlan 10\n+vlan 20\n"
    ev = config_changed("core-sw-1", diff, added=["vlan 20"], removed=1)
    insp = run(devs, rules, [icmp_ok("core-sw-1"), snmp("core-sw-1", [], events=[ev])])
    [f] = [f for f in insp.findings if f.rule == "config.changed"]
    assert f.severity.value == raw_rules()["config.changed"]["severity"]
    assert "+1/-1" in f.message.en
    [d] = insp.config_diffs
    assert (d.device, d.diff, d.added, d.removed) == ("core-sw-1", diff, 1, 1)


def test_rebooted_event_is_a_finding_without_history(devs: dict[str, Device], rules: InspectionRules) -> None:
    ev = Event("srv-1", EventKind.REBOOTED, T0, {})
    insp = run(devs, rules, [icmp_ok("srv-1"), snmp("srv-1", [sample("srv-1", "sys.uptime_s", 120)], events=[ev])])
    [f] = [f for f in insp.findings if f.rule == "rebooted"]
    assert f.device == "srv-1"
    assert "0 h 2 min" in f.message.en


@pytest.mark.parametrize(("days", "expected"), [(-1, "warranty.expired"), (0, "warranty.expiring"),
                                                (90, "warranty.expiring"), (91, None), (-400, "warranty.expired")])
def test_warranty_window_counts_local_days(tmp_path: Path, rules: InspectionRules, days: int,
                                           expected: str | None) -> None:
    now = T0.replace(hour=20)  # 04:00 next day in Shanghai: the local date is what counts
    today = now.astimezone(ZoneInfo("Asia/Shanghai")).date()
    assert today != now.date()
    devs = devices(tmp_path, warranty_sw=(today + timedelta(days=days)).isoformat())
    insp = inspect(list(devs.values()), [icmp_ok(n, now) for n in devs], rules, History.empty(), now=now)
    found = [f for f in insp.findings if f.device == "core-sw-1"]
    asset = next(a for a in insp.assets if a.device == "core-sw-1")
    assert asset.days_left == days
    if expected is None:
        assert found == []
        assert asset.warranty_flag is None
        return
    [f] = found
    raw = raw_rules()[expected]
    assert (f.rule, f.severity.value, f.value.en) == (expected, raw["severity"], str(abs(days)))
    assert asset.warranty_flag is Severity(raw["severity"])
    assert (today + timedelta(days=days)).isoformat() in f.message.zh


def test_summary_counts_and_figures(devs: dict[str, Device], rules: InspectionRules) -> None:
    results = [
        icmp_ok("core-sw-1", rtt=2.5), snmp("core-sw-1", [
            sample("core-sw-1", "cpu.util_pct", 12), sample("core-sw-1", "if.oper_up", 1, ifName="Gi0/1"),
            sample("core-sw-1", "if.oper_up", 1, ifName="Gi0/2"), sample("core-sw-1", "if.oper_up", 0, ifName="Gi0/3"),
            sample("core-sw-1", "temp.c", 41, sensor="board"), sample("core-sw-1", "sys.uptime_s", 90061)]),
        icmp_ok("srv-1"), snmp("srv-1", [sample("srv-1", "mem.util_pct", 99)]),
        icmp_dead("ups-1"), failed("ups-1", Protocol.SNMP, "timeout"),
    ]
    insp = run(devs, rules, results)
    s = insp.summary
    assert (s.checked, s.healthy, s.with_findings, s.unreachable) == (3, 1, 1, 1)
    f = next(d for d in insp.devices if d.name == "core-sw-1").figures
    assert (f.reachable, f.rtt_ms, f.loss_pct, f.cpu_pct, f.if_up, f.if_down, f.temp_max_c, f.uptime_s) == (
        True, 2.5, 0, 12, 2, 1, 41, 90061)
    assert s.by_severity[Severity.CRITICAL] == 2  # memory 99 % and the unreachable UPS


def test_now_must_be_aware(devs: dict[str, Device], rules: InspectionRules) -> None:
    with pytest.raises(ValueError, match="timezone"):
        inspect(list(devs.values()), [], rules, History.empty(), now=T0.replace(tzinfo=None))
