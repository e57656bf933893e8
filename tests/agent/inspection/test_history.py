"""Two inspections in a row: what the first remembers in the data directory decides what the second reports."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.agent.inspection.factory import RULES_FILE, T0, devices, icmp_ok, raw_rules, sample, snmp
from weibao.agent.inspection import History, Inspection, inspect, load_inspection_rules
from weibao.agent.inventory import Device
from weibao.core.inspection.rules import InspectionRules
from weibao.core.model import PollResult

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def rules() -> InspectionRules:
    return load_inspection_rules(RULES_FILE)


@pytest.fixture(scope="module")
def devs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Device]:
    return devices(tmp_path_factory.mktemp("inv"))


def daily_run(data_dir: Path, devs: dict[str, Device], rules: InspectionRules, results: list[PollResult],
              now: datetime) -> Inspection:
    """What the CLI does each day: load the history, inspect, remember, save."""
    history = History.load(data_dir)
    insp = inspect(list(devs.values()), results, rules, history, now=now)
    history.update(results, metrics=rules.remembered_metrics, now=now)
    history.save()
    return insp


def switch_round(ts: datetime, *, oper: dict[str, int], uptime: float | None = None,
                 in_errors: dict[str, float] | None = None) -> list[PollResult]:
    samples = [sample("core-sw-1", "if.oper_up", v, ts, ifName=n) for n, v in oper.items()]
    samples += [sample("core-sw-1", "if.in_errors_ps", v, ts, ifName=n) for n, v in (in_errors or {}).items()]
    if uptime is not None:
        samples.append(sample("core-sw-1", "sys.uptime_s", uptime, ts))
    return [icmp_ok("core-sw-1", ts), snmp("core-sw-1", samples)]


def rule_hits(insp: Inspection, rule: str) -> list[tuple[str, str]]:
    return [(f.device, f.label) for f in insp.findings if f.rule == rule]


def test_interface_down_that_was_up_last_time(tmp_path: Path, devs: dict[str, Device],
                                              rules: InspectionRules) -> None:
    first = daily_run(tmp_path, devs, rules, switch_round(T0, oper={"Gi0/1": 1, "Gi0/2": 1, "Gi0/3": 0}), T0)
    assert rule_hits(first, "if.down") == []  # no history yet, and Gi0/3 was never seen up
    second = daily_run(tmp_path, devs, rules,
                       switch_round(T0 + DAY, oper={"Gi0/1": 0, "Gi0/2": 1, "Gi0/3": 0}), T0 + DAY)
    assert rule_hits(second, "if.down") == [("core-sw-1", "Gi0/1")]
    [f] = [f for f in second.findings if f.rule == "if.down"]
    assert f.severity.value == raw_rules()["if.down"]["severity"]
    assert "Gi0/1" in f.message.zh and "Gi0/1" in f.message.en
    # still down the day after: reported once, when it went down
    third = daily_run(tmp_path, devs, rules, switch_round(T0 + 2 * DAY, oper={"Gi0/1": 0, "Gi0/2": 1}), T0 + 2 * DAY)
    assert rule_hits(third, "if.down") == []


def test_interface_state_survives_a_round_without_data(tmp_path: Path, devs: dict[str, Device],
                                                       rules: InspectionRules) -> None:
    daily_run(tmp_path, devs, rules, switch_round(T0, oper={"Gi0/1": 1}), T0)
    daily_run(tmp_path, devs, rules, [icmp_ok("core-sw-1", T0 + DAY)], T0 + DAY)  # SNMP did not run
    third = daily_run(tmp_path, devs, rules, switch_round(T0 + 2 * DAY, oper={"Gi0/1": 0}), T0 + 2 * DAY)
    assert rule_hits(third, "if.down") == [("core-sw-1", "Gi0/1")]


@pytest.mark.parametrize(("uptime_next_day", "rebooted"), [
    (500.0, True),                   # uptime went back
    (3600.0, True),                  # grew past the old value, but less than a day passed on the device
    (1000.0 + 86400, False),         # ran the whole day
    (1000.0 + 86400 - 300, False),   # within the tolerance of the file (checked below)
    (1000.0 + 86400 - 301, True),
])
def test_reboot_across_two_runs(tmp_path: Path, devs: dict[str, Device], rules: InspectionRules,
                                uptime_next_day: float, rebooted: bool) -> None:
    assert raw_rules()["rebooted"]["tolerance_s"] == 300
    first = daily_run(tmp_path, devs, rules, switch_round(T0, oper={}, uptime=1000.0), T0)
    assert rule_hits(first, "rebooted") == []
    second = daily_run(tmp_path, devs, rules, switch_round(T0 + DAY, oper={}, uptime=uptime_next_day), T0 + DAY)
    assert rule_hits(second, "rebooted") == ([("core-sw-1", "")] if rebooted else [])


def test_sysuptime_wrap_is_not_a_reboot(tmp_path: Path, devs: dict[str, Device], rules: InspectionRules) -> None:
    wrap = 2**32 / 100
    daily_run(tmp_path, devs, rules, switch_round(T0, oper={}, uptime=wrap - 3600), T0)
    second = daily_run(tmp_path, devs, rules, switch_round(T0 + DAY, oper={}, uptime=86400 - 3600), T0 + DAY)
    assert rule_hits(second, "rebooted") == []


def test_error_rate_rising_since_last_inspection(tmp_path: Path, devs: dict[str, Device],
                                                 rules: InspectionRules) -> None:
    rise = raw_rules()["if.errors.rising"]["levels"]["minor"]
    base = 0.05
    ports = {"Gi0/1": base, "Gi0/2": base, "Gi0/3": base}
    first = daily_run(tmp_path, devs, rules, switch_round(T0, oper={}, in_errors=ports), T0)
    assert rule_hits(first, "if.errors.rising") == []  # nothing to compare with yet
    # at, just below and just above the rise the file asks for
    now = {"Gi0/1": base + rise, "Gi0/2": base + rise * 0.9, "Gi0/3": base + rise * 1.1}
    second = daily_run(tmp_path, devs, rules, switch_round(T0 + DAY, oper={}, in_errors=now), T0 + DAY)
    assert rule_hits(second, "if.errors.rising") == [("core-sw-1", "Gi0/1"), ("core-sw-1", "Gi0/3")]
    [f] = [f for f in second.findings if f.rule == "if.errors.rising" and f.label == "Gi0/1"]
    assert "0.05" in f.message.en and "0.06" in f.message.en
    # the next day compares with the second run, not the first
    third = daily_run(tmp_path, devs, rules, switch_round(T0 + 2 * DAY, oper={}, in_errors=now), T0 + 2 * DAY)
    assert rule_hits(third, "if.errors.rising") == []


def test_history_file_is_private_and_readable_json(tmp_path: Path, devs: dict[str, Device],
                                                   rules: InspectionRules) -> None:
    daily_run(tmp_path, devs, rules, switch_round(T0, oper={"Gi0/1": 1}, uptime=42.0), T0)
    [path] = list(tmp_path.glob("*.json"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["core-sw-1"]["uptime"] == [42.0, T0.isoformat()]
    assert data["core-sw-1"]["values"]["if.oper_up"] == {"ifName=Gi0/1": 1}
    again = History.load(tmp_path)
    assert again.uptime("core-sw-1") == (42.0, T0)
    assert again.inspected_at("core-sw-1") == T0


def test_damaged_history_costs_one_comparison_not_the_run(tmp_path: Path, devs: dict[str, Device],
                                                          rules: InspectionRules) -> None:
    (tmp_path / "inspection-history.json").write_text("{not json", encoding="utf-8")
    insp = daily_run(tmp_path, devs, rules, switch_round(T0, oper={"Gi0/1": 0}), T0)
    assert rule_hits(insp, "if.down") == []
    assert History.load(tmp_path).previous("core-sw-1", "if.oper_up", "ifName=Gi0/1") == 0
