"""The SNMP poller against snmpsim serving recordings of real devices; expected values come from the recordings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.peers.snmpsim import device_for, read_recording, running_snmpsim
from weibao.agent.pollers.snmp import SnmpPoller
from weibao.agent.state import StateStore
from weibao.core.model import PollResult
from weibao.embedded.simlab import SnmpSim

pytestmark = pytest.mark.timeout(180)

RECORDINGS = {
    "huawei-s5720": "network/router/huawei-s5720",
    "h3c-e528": "network/switch/h3c-e528-2",
    "cisco-c3560": "network/switch/cisco-c3560",
    "ruijie-s5750": "network/switch/ruijie-s5750-24gt12sfp",
    "linux": "os/linux/unknown-004",
    "eaton-93e": "UPS/eaton-93e-80",
    "eastpower": "UPS/eastpower-istars-swv053",
    "huawei-gse200m": "UPS/huawei-gse200m",
    "apc-pdu": "UPS/apc-8932",
    "paloalto": "network/firewall/paloalto-pa-5000",
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SnmpSim]:
    with running_snmpsim(RECORDINGS) as s:
        yield s


class Rec:
    """One recording, read from its file: OID -> value, and a column as index -> value."""

    def __init__(self, name: str) -> None:
        self.raw = read_recording(RECORDINGS[name])

    @staticmethod
    def _value(tag: str, text: str) -> Any:
        if ":" in tag:
            return None  # a variation module computes this one at run time
        if tag == "4x":
            return bytes.fromhex(text).decode("utf-8", errors="replace")
        if tag in ("2", "65", "66", "67", "70"):
            return int(text)
        return text

    def get(self, oid: str) -> Any:
        tag, text = self.raw[oid]
        return self._value(tag, text)

    def has(self, oid: str) -> bool:
        return oid in self.raw

    def column(self, prefix: str) -> dict[str, Any]:
        p = prefix + "."
        return {oid[len(p):]: self._value(*v) for oid, v in self.raw.items() if oid.startswith(p)}

    def is_variated(self, oid: str) -> bool:
        return ":" in self.raw[oid][0]


def poll(sim: SnmpSim, names: list[str], state: StateStore | None = None, **kw: Any) -> dict[str, PollResult]:
    async def run() -> list[PollResult]:
        poller = SnmpPoller(state or StateStore(), max_in_flight=8)
        try:
            return await poller.poll_many([device_for(sim, n, **kw) for n in names])
        finally:
            poller.close()

    return {r.device: r for r in asyncio.run(run())}


def values(r: PollResult, metric: str) -> dict[str, float]:
    """metric samples of a result as label value (or '') -> value."""
    return {next(iter(s.labels.values()), ""): s.value for s in r.samples if s.metric == metric}


def one(r: PollResult, metric: str) -> float | None:
    v = values(r, metric)
    assert len(v) <= 1, v
    return v.get("")


@pytest.fixture(scope="module")
def first_round(sim: SnmpSim) -> dict[str, PollResult]:
    return poll(sim, list(RECORDINGS))


def test_every_device_answers_and_names_itself(first_round: dict[str, PollResult]) -> None:
    for name, r in first_round.items():
        rec = Rec(name)
        assert r.ok, (name, r.errors)
        assert one(r, "snmp.up") == 1.0
        assert r.facts["sysName"] == rec.get("1.3.6.1.2.1.1.5.0")
        assert r.facts["sysObjectID"] == rec.get("1.3.6.1.2.1.1.2.0")
        if not rec.is_variated("1.3.6.1.2.1.1.3.0"):
            assert one(r, "sys.uptime_s") == pytest.approx(rec.get("1.3.6.1.2.1.1.3.0") / 100)
        ifdescr = rec.column("1.3.6.1.2.1.2.2.1.2")
        assert sorted(i["descr"] for i in r.facts.get("interfaces", [])) == sorted(ifdescr.values())


def test_huawei_entity_cpu_memory_temperature(first_round: dict[str, PollResult]) -> None:
    r, rec = first_round["huawei-s5720"], Rec("huawei-s5720")
    assert "huawei" in r.facts["profiles"]
    base = "1.3.6.1.4.1.2011.5.25.31.1.1.1.1"
    assert one(r, "cpu.util_pct") == max(rec.column(base + ".5").values())
    assert one(r, "mem.util_pct") == max(rec.column(base + ".7").values())
    names = rec.column("1.3.6.1.2.1.47.1.1.1.1.7")
    expected = {names[i]: v for i, v in rec.column(base + ".11").items() if v > 0}
    assert expected and values(r, "temp.c") == expected


def test_h3c_entity_ext(first_round: dict[str, PollResult]) -> None:
    r, rec = first_round["h3c-e528"], Rec("h3c-e528")
    assert "h3c" in r.facts["profiles"]
    base = "1.3.6.1.4.1.25506.2.6.1.1.1.1"
    assert one(r, "mem.util_pct") == max(rec.column(base + ".8").values())
    cpu = one(r, "cpu.util_pct")  # the recording varies it ("numeric" variation, 0..100)
    assert cpu is not None and 0 <= cpu <= 100
    names = rec.column("1.3.6.1.2.1.47.1.1.1.1.7")
    expected = {names[i]: v for i, v in rec.column(base + ".12").items() if v and 0 < v != 65535}
    assert expected and values(r, "temp.c") == expected


def test_cisco_cpu_memory_pool_envmon(first_round: dict[str, PollResult]) -> None:
    r, rec = first_round["cisco-c3560"], Rec("cisco-c3560")
    assert "cisco" in r.facts["profiles"]
    assert one(r, "cpu.util_pct") == max(rec.column("1.3.6.1.4.1.9.9.109.1.1.1.1.8").values())
    pools = rec.column("1.3.6.1.4.1.9.9.48.1.1.1.2")
    proc = next(i for i, n in pools.items() if n == "Processor")
    used = rec.get(f"1.3.6.1.4.1.9.9.48.1.1.1.5.{proc}")
    free = rec.get(f"1.3.6.1.4.1.9.9.48.1.1.1.6.{proc}")
    assert one(r, "mem.util_pct") == pytest.approx(100 * used / (used + free))
    descr = rec.column("1.3.6.1.4.1.9.9.13.1.3.1.2")
    expected = {descr[i].strip(): v for i, v in rec.column("1.3.6.1.4.1.9.9.13.1.3.1.3").items()}
    assert expected and values(r, "temp.c") == expected


def test_cisco_over_snmpv1_walks_with_getnext(sim: SnmpSim, first_round: dict[str, PollResult]) -> None:
    r = poll(sim, ["cisco-c3560"], version="1")["cisco-c3560"]
    assert r.ok, r.errors
    v2 = first_round["cisco-c3560"]
    for metric in ("cpu.util_pct", "mem.util_pct", "temp.c", "if.oper_up"):
        assert values(r, metric) == values(v2, metric), metric


def test_ruijie_cpu_memory(first_round: dict[str, PollResult]) -> None:
    r, rec = first_round["ruijie-s5750"], Rec("ruijie-s5750")
    assert "ruijie" in r.facts["profiles"]
    assert one(r, "cpu.util_pct") == rec.get("1.3.6.1.4.1.4881.1.1.10.2.36.1.1.3.0")
    assert one(r, "mem.util_pct") == max(rec.column("1.3.6.1.4.1.4881.1.1.10.2.35.1.1.1.3").values())


def test_linux_host_ucd_and_host_resources(first_round: dict[str, PollResult]) -> None:
    r, rec = first_round["linux"], Rec("linux")
    assert {"ucd", "host_resources"} <= set(r.facts["profiles"])
    # first poll: no counter rates yet, so CPU falls back to ssCpuIdle
    assert one(r, "cpu.util_pct") == 100 - rec.get("1.3.6.1.4.1.2021.11.11.0")
    total, avail = rec.get("1.3.6.1.4.1.2021.4.5.0"), rec.get("1.3.6.1.4.1.2021.4.6.0")
    buf, cached = rec.get("1.3.6.1.4.1.2021.4.14.0"), rec.get("1.3.6.1.4.1.2021.4.15.0")
    assert one(r, "mem.util_pct") == pytest.approx(100 * (total - avail - buf - cached) / total)
    types = rec.column("1.3.6.1.2.1.25.2.3.1.2")
    descr = rec.column("1.3.6.1.2.1.25.2.3.1.3")
    size, used = rec.column("1.3.6.1.2.1.25.2.3.1.5"), rec.column("1.3.6.1.2.1.25.2.3.1.6")
    disks = {descr[i]: pytest.approx(100 * used[i] / size[i]) for i, t in types.items()
             if t == "1.3.6.1.2.1.25.2.1.4" and size[i]}
    assert disks and values(r, "disk.util_pct") == disks


def test_rfc1628_ups(first_round: dict[str, PollResult]) -> None:
    r, rec = first_round["eaton-93e"], Rec("eaton-93e")
    assert "ups_mib" in r.facts["profiles"]
    assert one(r, "ups.battery_status") == rec.get("1.3.6.1.2.1.33.1.2.1.0")
    assert one(r, "ups.battery_charge_pct") == rec.get("1.3.6.1.2.1.33.1.2.4.0")
    assert one(r, "ups.runtime_min") == rec.get("1.3.6.1.2.1.33.1.2.3.0")
    assert one(r, "ups.temperature_c") == rec.get("1.3.6.1.2.1.33.1.2.7.0")
    assert one(r, "ups.on_battery") == (1.0 if rec.get("1.3.6.1.2.1.33.1.4.1.0") == 5 else 0.0)
    assert one(r, "ups.input_voltage_v") == max(rec.column("1.3.6.1.2.1.33.1.3.3.1.3").values())
    assert one(r, "ups.output_load_pct") == max(rec.column("1.3.6.1.2.1.33.1.4.4.1.5").values())


def test_ups_sentinels_are_not_passed_on(first_round: dict[str, PollResult]) -> None:
    gse, rec = first_round["huawei-gse200m"], Rec("huawei-gse200m")
    assert rec.get("1.3.6.1.2.1.33.1.2.4.0") == -1  # the recording's "unknown" charge...
    assert one(gse, "ups.battery_charge_pct") is None  # ...is not a reading
    assert rec.get("1.3.6.1.2.1.33.1.2.3.0") == -1
    assert one(gse, "ups.runtime_min") is None
    assert one(gse, "ups.temperature_c") is None
    assert max(rec.column("1.3.6.1.2.1.33.1.3.3.1.3").values()) > 1000  # tenths of a volt, against the RFC
    assert one(gse, "ups.input_voltage_v") is None
    assert one(gse, "ups.battery_status") == rec.get("1.3.6.1.2.1.33.1.2.1.0")
    east, erec = first_round["eastpower"], Rec("eastpower")
    assert erec.get("1.3.6.1.2.1.33.1.2.3.0") == 0 and erec.get("1.3.6.1.2.1.33.1.4.1.0") != 5
    assert one(east, "ups.runtime_min") is None  # 0 minutes while on mains means "not estimated"
    assert one(east, "ups.battery_charge_pct") == erec.get("1.3.6.1.2.1.33.1.2.4.0")


def test_apc_powernet_chosen_and_missing_ups_groups_skipped(first_round: dict[str, PollResult]) -> None:
    r, rec = first_round["apc-pdu"], Rec("apc-pdu")
    assert r.ok and "apc_powernet" in r.facts["profiles"]
    # this APC card is a rack PDU: no upsBasic/upsAdv objects, so no UPS readings and no error
    assert not any(oid.startswith("1.3.6.1.4.1.318.1.1.1.") for oid in rec.raw)
    assert not [s for s in r.samples if s.metric.startswith("ups.")]
    # its only temperature probe reads -1 (none plugged in): not a reading
    assert set(rec.column("1.3.6.1.4.1.318.1.1.26.10.2.2.1.8").values()) == {-1}
    assert values(r, "temp.c") == {}


def test_entity_sensor_temperatures(first_round: dict[str, PollResult]) -> None:
    r, rec = first_round["paloalto"], Rec("paloalto")
    base = "1.3.6.1.2.1.99.1.1.1"
    types, scale = rec.column(base + ".1"), rec.column(base + ".2")
    prec, val, oper = rec.column(base + ".3"), rec.column(base + ".4"), rec.column(base + ".5")
    names = rec.column("1.3.6.1.2.1.47.1.1.1.1.7")
    expected = {names[i]: pytest.approx(val[i] * 10 ** (3 * (scale[i] - 9) - prec[i]))
                for i, t in types.items() if t == 8 and oper[i] == 1}
    assert expected and values(r, "temp.c") == expected


def test_second_round_rates_and_absent_mibs_remembered(sim: SnmpSim) -> None:
    state = StateStore()
    first = poll(sim, ["huawei-s5720"], state)["huawei-s5720"]
    assert not values(first, "if.in_bps")  # one reading is no rate
    absent = state.get("huawei-s5720", "snmp.absent")
    assert {"ups_mib", "host_resources", "ucd", "entity_sensor"} <= set(absent)
    second = poll(sim, ["huawei-s5720"], state)["huawei-s5720"]
    assert second.ok
    assert second.facts["profiles"] == ["system", "huawei", "if_mib"]
    rec = Rec("huawei-s5720")
    hc_in = rec.column("1.3.6.1.2.1.31.1.1.1.6")
    names = rec.column("1.3.6.1.2.1.31.1.1.1.1")
    static = {names[i] for i in hc_in if not rec.is_variated(f"1.3.6.1.2.1.31.1.1.1.6.{i}")}
    in_bps = values(second, "if.in_bps")
    assert static and all(in_bps[n] == 0.0 for n in static)  # the recorded counters do not move


def test_demo_recordings_simulate_what_the_demo_promises() -> None:
    from weibao.embedded.simlab import DEMO_RECORDINGS

    with running_snmpsim(DEMO_RECORDINGS) as demo:
        results = poll(demo, list(DEMO_RECORDINGS))
    wanted = {"core-sw-1": {"huawei", "if_mib"}, "access-sw-1": {"h3c", "if_mib"},
              "linux-srv-1": {"ucd", "host_resources", "if_mib"}, "ups-1": {"ups_mib"}}
    assert set(wanted) == set(DEMO_RECORDINGS)
    for name, profiles in wanted.items():
        r = results[name]
        assert r.ok, (name, r.errors)
        assert profiles <= set(r.facts["profiles"]), (name, r.facts["profiles"])
    assert one(results["ups-1"], "ups.battery_charge_pct") is not None
    assert one(results["core-sw-1"], "cpu.util_pct") is not None
