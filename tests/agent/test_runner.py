"""The derived ``up`` metric: ICMP and SNMP on separate schedules must not fight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from weibao.agent.inventory.model import Device, IcmpSettings, SnmpCredential, SnmpSettings
from weibao.agent.runner import derive_up
from weibao.agent.state import StateStore
from weibao.core.inventory import Category, Kind
from weibao.core.model import PollResult, Protocol, Sample

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
CRED = SnmpCredential(type="snmp", version="2c", community="x")


def device(*, icmp: bool = True, snmp: bool = True) -> Device:
    return Device(name="r1", address="127.0.0.1", kind=Kind.ROUTER, category=Category.BUSINESS,
                  icmp=IcmpSettings() if icmp else None,
                  snmp=SnmpSettings(credential_name="c", credential=CRED) if snmp else None)


def icmp(ok: bool, ts: datetime) -> PollResult:
    return PollResult("r1", Protocol.ICMP, [Sample("r1", "icmp.loss_pct", 0.0 if ok else 100.0, ts)])


def snmp(ok: bool, ts: datetime) -> PollResult:
    return PollResult("r1", Protocol.SNMP, [Sample("r1", "snmp.up", 1.0 if ok else 0.0, ts)])


def up(dev: Device, results: list[PollResult], ts: datetime, state: StateStore) -> float | None:
    s = derive_up(dev, results, ts, state)
    return None if s is None else s.value


def test_one_round_with_both_protocols_is_up_when_either_answers() -> None:
    st = StateStore()
    assert up(device(), [icmp(False, T0), snmp(True, T0)], T0, st) == 1
    assert up(device(), [icmp(False, T0), snmp(False, T0)], T0, st) == 0


def test_pings_but_snmp_dead_does_not_flap_on_separate_schedules() -> None:
    st, dev = StateStore(), device()
    seen = []
    for i in range(12):
        t = T0 + timedelta(seconds=10 * i)
        seen.append(up(dev, [icmp(True, t)], t, st))
        if i % 6 == 0:
            seen.append(up(dev, [snmp(False, t)], t, st))
    assert [v for v in seen if v is not None] == [1.0] * 12


def test_device_that_dies_is_down_at_the_next_icmp_round() -> None:
    st, dev = StateStore(), device()
    assert up(dev, [icmp(True, T0)], T0, st) == 1
    assert up(dev, [snmp(True, T0 + timedelta(seconds=5))], T0 + timedelta(seconds=5), st) is None
    assert up(dev, [icmp(False, T0 + timedelta(seconds=10))], T0 + timedelta(seconds=10), st) == 0


def test_filtered_icmp_leaves_the_verdict_to_snmp() -> None:
    st, dev = StateStore(), device()
    assert up(dev, [icmp(False, T0)], T0, st) is None
    assert up(dev, [snmp(True, T0)], T0, st) == 1
    assert up(dev, [snmp(False, T0 + timedelta(seconds=60))], T0 + timedelta(seconds=60), st) == 0


def test_single_protocol_devices() -> None:
    assert up(device(icmp=False), [snmp(False, T0)], T0, StateStore()) == 0
    assert up(device(snmp=False), [icmp(False, T0)], T0, StateStore()) == 0
