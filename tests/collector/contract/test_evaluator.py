"""Evaluator built from a real inventory file: trackers per category, probe intervals, depends_on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.collector.contract.conftest import at, every_minute
from weibao.agent.inventory.loader import load_inventory
from weibao.collector.contract.evaluator import DeviceSpec, Evaluator, device_spec
from weibao.collector.contract.rules import Condition, ContractRules, TrackKey
from weibao.core.inventory import Category
from weibao.core.model import Sample

INVENTORY = """\
site: test
credentials:
  ro: {type: snmp, version: 2c, community: "${COMMUNITY}"}
defaults:
  snmp: {credential: ro}
  schedule: {icmp_s: 15, snmp_s: 60}
devices:
  - {name: core-1, address: 127.0.0.1, kind: router, category: backbone}
  - {name: prov-1, address: 127.0.0.2, kind: router, category: provincial, depends_on: core-1}
  - {name: app-1, address: 127.0.0.3, kind: server, category: business, depends_on: prov-1,
     icmp: {enabled: false}}
"""


def test_specs_and_trackers_from_inventory(tmp_path: Path, rules: ContractRules) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY, encoding="utf-8")
    inventory = load_inventory(path, env={"COMMUNITY": "not-a-real-one"})
    # as the collector derives them from what the agent registers
    specs = {d.name: device_spec(d.public()) for d in inventory.devices.values()}
    assert specs["core-1"] == DeviceSpec("core-1", Category.BACKBONE, None, timedelta(seconds=15))
    assert specs["prov-1"].depends_on == "core-1"
    assert specs["app-1"].probe_interval == timedelta(seconds=60)   # SNMP only
    ev = Evaluator(rules, specs.values())
    assert {t.key for t in ev.trackers("core-1")} == {TrackKey(Condition.DOWN),
                                                      TrackKey(Condition.LOSS_OR_LATENCY, 30.0, 800.0)}
    assert {t.key.condition for t in ev.trackers("prov-1")} == {Condition.CUT_OFF, Condition.LOSS_OR_LATENCY}
    tracker = ev.tracker("app-1", TrackKey(Condition.DOWN))
    assert tracker.gap_threshold == timedelta(minutes=3)   # 3 missed probes of 60 s


def test_chain_of_upstreams_attaches_to_the_root(rules: ContractRules) -> None:
    ev = Evaluator(rules, [DeviceSpec("core-1", Category.BACKBONE, None, timedelta(minutes=1)),
                           DeviceSpec("prov-1", Category.PROVINCIAL, "core-1", timedelta(minutes=1)),
                           DeviceSpec("app-1", Category.BUSINESS, "prov-1", timedelta(minutes=1))])
    opened = []
    for t in every_minute(at("2026-11-24 09:00"), at("2026-11-24 09:10")):
        for lag, device in enumerate(("core-1", "prov-1", "app-1")):
            value = 0.0 if t >= at("2026-11-24 09:05") else 1.0
            opened += [(s.device, s.key.condition.value, s.upstream)
                       for s in ev.observe(Sample(device, "up", value, t + timedelta(seconds=lag)))]
    assert opened == [("core-1", "down", None), ("prov-1", "cut_off", "core-1"), ("app-1", "down", "core-1")]
