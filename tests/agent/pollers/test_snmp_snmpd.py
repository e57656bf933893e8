"""The SNMP poller against a real net-snmp snmpd on loopback: values checked against /proc and snmpget."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.snmpd import COMMUNITY, Snmpd, free_udp_port, running_snmpd
from weibao.agent.inventory.model import Device, SnmpCredential, SnmpSettings
from weibao.agent.pollers.snmp import SnmpPoller
from weibao.agent.state import StateStore
from weibao.core.inventory import Category, Kind
from weibao.core.model import EventKind, PollResult, Protocol

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def snmpd() -> Iterator[Snmpd]:
    with running_snmpd() as d:
        yield d


def device(name: str, port: int, *, version: str = "2c", community: str = COMMUNITY, timeout_s: float = 2.0,
           retries: int = 1, address: str = "127.0.0.1", profiles: list[str] | None = None) -> Device:
    cred = SnmpCredential(type="snmp", version=version, community=community)
    return Device(name=name, address=address, kind=Kind.SERVER, category=Category.MIS,
                  snmp=SnmpSettings(credential_name="test", credential=cred, port=port, timeout_s=timeout_s,
                                    retries=retries, profiles=profiles))


def run(poller: SnmpPoller, devices: list[Device]) -> list[PollResult]:
    return asyncio.run(poller.poll_many(devices))


def one(r: PollResult, metric: str, label: str | None = None) -> float | None:
    found = [s.value for s in r.samples if s.metric == metric
             and (label is None or label in s.labels.values())]
    return found[0] if found else None


def meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0])
    return out


def test_system_interfaces_memory_against_proc_and_snmpget(snmpd: Snmpd) -> None:
    poller = SnmpPoller(StateStore())
    try:
        (r,) = run(poller, [device("host", snmpd.port)])
    finally:
        poller.close()
    assert r.ok, r.errors
    assert one(r, "snmp.up") == 1.0
    assert r.facts["sysName"] == "weibao-test-snmpd"  # from the snmpd.conf the fixture wrote
    assert r.facts["sysLocation"] == "weibao test rack"
    assert r.facts["sysObjectID"].startswith("1.3.6.1.4.1.8072.")
    assert {"if_mib", "ucd", "host_resources"} <= set(r.facts["profiles"])
    # sysUpTime is snmpd's own uptime: what snmpget reads, and less than the host's
    ticks = int(snmpd.snmpget("1.3.6.1.2.1.1.3.0") or "0")
    assert one(r, "sys.uptime_s") == pytest.approx(ticks / 100, abs=3)
    assert (one(r, "sys.uptime_s") or 0) <= float(Path("/proc/uptime").read_text().split()[0])
    # the interface list is the kernel's
    names = {i["name"] for i in r.facts["interfaces"]}
    assert names == set(os.listdir("/sys/class/net"))
    lo = next(i for i in r.facts["interfaces"] if i["name"] == "lo")
    assert lo["oper_status"] == 1 and lo["admin_status"] == 1
    assert one(r, "if.oper_up", "lo") == 1.0
    # memory: UCD's figures, the same as snmpget and /proc say
    total = int(snmpd.snmpget("1.3.6.1.4.1.2021.4.5.0") or "0")
    assert total == meminfo()["MemTotal"]
    vals = [int(snmpd.snmpget(f"1.3.6.1.4.1.2021.4.{i}.0") or "0") for i in (6, 14, 15)]
    assert one(r, "mem.util_pct") == pytest.approx(100 * (total - sum(vals)) / total, abs=1.0)
    m = meminfo()
    proc_used = 100 * (m["MemTotal"] - m["MemFree"] - m["Buffers"] - m["Cached"]) / m["MemTotal"]
    assert one(r, "mem.util_pct") == pytest.approx(proc_used, abs=5.0)
    # disks: HOST-RESOURCES fixed disks, labelled by mount point; "/" is one
    root = one(r, "disk.util_pct", "/")
    st = os.statvfs("/")
    assert root == pytest.approx(100 * (st.f_blocks - st.f_bfree) / st.f_blocks, abs=2.0)


def test_interface_rates_need_two_polls_and_follow_traffic(snmpd: Snmpd) -> None:
    state = StateStore()
    poller = SnmpPoller(state)
    dev = device("rates", snmpd.port, profiles=["if_mib"])
    try:
        (first,) = run(poller, [dev])
        assert one(first, "if.in_bps", "lo") is None  # one reading is no rate
        t0 = time.monotonic()
        sent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sink.bind(("127.0.0.1", 0))
            while time.monotonic() - t0 < 3.0:
                for _ in range(200):
                    s.sendto(b"w" * 1400, sink.getsockname())
                    sent += 1400 + 28  # what lo counts: payload, UDP and IP headers
                time.sleep(0.01)
            sink.close()
        time.sleep(2.5)  # snmpd refreshes its interface counters every few seconds
        (second,) = run(poller, [dev])
    finally:
        poller.close()
    in_bps = one(second, "if.in_bps", "lo")
    elapsed = time.monotonic() - t0
    assert in_bps is not None and in_bps > 0
    expected = sent * 8 / elapsed
    assert expected * 0.3 < in_bps < expected * 3
    assert one(second, "if.in_errors_ps", "lo") == 0.0


def test_snmpv1_gives_the_same_system_facts(snmpd: Snmpd) -> None:
    poller = SnmpPoller(StateStore())
    try:
        v1, v2 = run(poller, [device("v1", snmpd.port, version="1"), device("v2", snmpd.port)])
    finally:
        poller.close()
    assert v1.ok, v1.errors
    assert v1.facts["sysName"] == v2.facts["sysName"]
    assert [i["name"] for i in v1.facts["interfaces"]] == [i["name"] for i in v2.facts["interfaces"]]


def test_dead_device_times_out_without_delaying_the_others(snmpd: Snmpd) -> None:
    closed = free_udp_port()  # nothing listens there
    devices = [device("dead", closed, timeout_s=1.0, retries=1)]
    devices += [device(f"alive{i}", snmpd.port, timeout_s=1.0) for i in range(5)]
    poller = SnmpPoller(StateStore(), max_in_flight=4)
    t0 = time.monotonic()
    try:
        results = run(poller, devices)
    finally:
        poller.close()
    elapsed = time.monotonic() - t0
    dead, *alive = results
    assert [r.device for r in results] == [d.name for d in devices]  # input order
    assert not dead.ok and one(dead, "snmp.up") == 0.0
    assert "no answer" in dead.errors[0].message and dead.errors[0].retryable
    assert all(r.ok and one(r, "snmp.up") == 1.0 for r in alive)
    assert elapsed < 1.0 * 2 + 2.0  # its two tries, plus a little; the others ran meanwhile


def test_wrong_community_is_a_failed_result(snmpd: Snmpd) -> None:
    poller = SnmpPoller(StateStore())
    try:
        (r,) = run(poller, [device("wrong", snmpd.port, community="not-the-community", timeout_s=0.5, retries=0)])
    finally:
        poller.close()
    assert not r.ok and one(r, "snmp.up") == 0.0
    assert "not-the-community" not in repr(r)


def test_restarted_agent_is_reported_as_rebooted() -> None:
    with running_snmpd() as d:
        state = StateStore()
        poller = SnmpPoller(state)
        dev = device("reboots", d.port, profiles=["if_mib"])
        try:
            time.sleep(2.0)
            (first,) = run(poller, [dev])
            before = one(first, "sys.uptime_s")
            assert before is not None and before >= 1.5
            assert not first.events
            d.restart()
            (second,) = run(poller, [dev])
        finally:
            poller.close()
    after = one(second, "sys.uptime_s")
    assert after is not None and after < before
    (event,) = second.events
    assert event.kind == EventKind.REBOOTED
    assert event.data == {"previous_uptime_s": before, "uptime_s": after}
    assert one(second, "if.oper_up", "lo") == 1.0
    assert one(second, "if.in_bps") is None  # no rate across a reboot


@pytest.mark.parametrize("version", ["1", "2c"])
def test_our_ber_client_and_pysnmp_read_the_same(snmpd: Snmpd, version: str) -> None:
    results = []
    for via_pysnmp in (False, True):
        poller = SnmpPoller(StateStore(), pysnmp_for_community=via_pysnmp)
        try:
            (r,) = run(poller, [device("same", snmpd.port, version=version, profiles=["if_mib"])])
        finally:
            poller.close()
        assert r.ok, r.errors
        results.append(r)
    ours, theirs = results
    for key in ("sysName", "sysDescr", "sysObjectID", "sysLocation", "sysContact"):
        assert ours.facts[key] == theirs.facts[key]
    strip = [{k: v for k, v in i.items() if k != "speed_bps"} for i in ours.facts["interfaces"]]
    assert strip == [{k: v for k, v in i.items() if k != "speed_bps"} for i in theirs.facts["interfaces"]]
    assert {(s.metric, tuple(s.labels.items())) for s in ours.samples} == \
        {(s.metric, tuple(s.labels.items())) for s in theirs.samples}


def _open_sockets() -> int:
    fd_dir = Path("/proc/self/fd")
    count = 0
    for fd in fd_dir.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue  # closed while listed
    return count


def test_rounds_leave_no_socket_open(snmpd: Snmpd) -> None:
    """Every round of the daemon opens its poller's socket and closes it: a month of rounds must not
    leave one behind (all devices start at once, so they race to open the socket)."""
    from weibao.agent.runner import poll_once

    devices = [device(f"d{i}", snmpd.port, timeout_s=1.0) for i in range(8)]
    state = StateStore()

    async def rounds() -> tuple[int, int]:
        async def one_round() -> None:
            results = await poll_once(devices, {Protocol.SNMP}, state)
            assert all(r.ok for r in results)

        await one_round()  # warm: whatever is opened once per process
        await asyncio.sleep(0.1)  # closed transports finish closing in the next loop turns
        before = _open_sockets()
        for _ in range(10):
            await one_round()
        await asyncio.sleep(0.1)
        gc.collect()
        return before, _open_sockets()

    before, after = asyncio.run(rounds())  # one event loop, as in the daemon
    assert after <= before  # (a socket left over by an earlier test may close meanwhile)
