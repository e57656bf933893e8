"""The ICMP poller against real ICMP: loopback, a network namespace we create, and nftables loss."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.peers import netns as netns_peer
from weibao.agent.inventory.model import Device, IcmpSettings
from weibao.agent.pollers.icmp import (
    BurstStats,
    IcmpUnavailable,
    SocketKind,
    open_icmp_socket,
    ping_addresses,
    ping_many,
)
from weibao.core.inventory import Category, Kind
from weibao.core.model import PollResult, Protocol

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[3]
NOBODY = 65534  # uid of nobody and gid of nogroup on Debian
RTT_METRICS = {"icmp.rtt_ms", "icmp.rtt_min_ms", "icmp.rtt_max_ms"}


def device(name: str, address: str, *, count: int = 5, interval_ms: int = 10, timeout_ms: int = 500,
           icmp: bool = True) -> Device:
    settings = IcmpSettings(count=count, interval_ms=interval_ms, timeout_ms=timeout_ms) if icmp else None
    return Device(name=name, address=address, kind=Kind.SERVER, category=Category.BUSINESS, icmp=settings)


def values(result: PollResult) -> dict[str, float]:
    return {s.metric: s.value for s in result.samples}


def raw_icmp_allowed() -> bool:
    try:
        open_icmp_socket(socket.AF_INET).sock.close()
    except IcmpUnavailable:
        return False
    return True


needs_icmp = pytest.mark.skipif(not raw_icmp_allowed(), reason="no ICMP socket allowed for this user")
needs_netns = pytest.mark.skipif(netns_peer.available() is not None,
                                 reason=str(netns_peer.available()))


@pytest.fixture(scope="module")
def ns() -> Iterator[netns_peer.Netns]:
    with netns_peer.netns() as created:
        yield created


# --- pure logic: what a burst's numbers mean --------------------------------------------------------


def test_burst_stats_loss_and_jitter_follow_their_definitions() -> None:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    stats = BurstStats("198.51.100.9", started, (1.0, None, 3.0, 2.0, None))
    assert stats.sent == 5 and stats.received == 3
    assert stats.loss_pct == pytest.approx(40.0)
    assert stats.rtt_avg_ms == pytest.approx(2.0)
    assert (stats.rtt_min_ms, stats.rtt_max_ms) == (1.0, 3.0)
    # consecutive answered pairs: |3-1| and |2-3| -> (2 + 1) / 2
    assert stats.jitter_ms == pytest.approx(1.5)
    one = BurstStats("x", started, (None, 4.0))
    assert one.jitter_ms is None and one.rtt_avg_ms == 4.0
    none = BurstStats("x", started, (None, None))
    assert none.loss_pct == 100.0 and none.rtt_avg_ms is None and none.jitter_ms is None


# --- loopback ------------------------------------------------------------------------------------


@needs_icmp
def test_loopback_burst_has_no_loss_and_sub_millisecond_samples() -> None:
    before = datetime.now(UTC)
    [result] = asyncio.run(ping_many([device("lo", "127.0.0.1", count=5)]))
    after = datetime.now(UTC)
    assert result.ok, result.errors
    assert result.device == "lo" and result.protocol is Protocol.ICMP
    got = values(result)
    assert set(got) == {"icmp.loss_pct", "icmp.jitter_ms"} | RTT_METRICS
    assert got["icmp.loss_pct"] == 0.0
    assert 0.0 <= got["icmp.rtt_min_ms"] <= got["icmp.rtt_ms"] <= got["icmp.rtt_max_ms"] < 20.0
    assert got["icmp.jitter_ms"] >= 0.0
    assert all(s.labels == {} for s in result.samples)
    stamps = {s.ts for s in result.samples}
    assert len(stamps) == 1
    [ts] = stamps
    assert ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert before <= ts <= after
    assert result.facts["reachable"] is True and result.facts["sent"] == 5 and result.facts["received"] == 5


@needs_icmp
def test_ipv6_loopback_answers() -> None:
    if not Path("/proc/net/if_inet6").read_text().strip():
        pytest.skip("IPv6 is disabled on this host")
    [result] = asyncio.run(ping_many([device("lo6", "::1", count=3)]))
    assert result.ok, result.errors
    assert values(result)["icmp.loss_pct"] == 0.0
    assert result.facts["address"] == "::1"


@needs_icmp
def test_host_name_resolves_from_etc_hosts_and_order_is_kept() -> None:
    hosts = Path("/etc/hosts").read_text().splitlines()
    localhost = {line.split()[0] for line in hosts
                 if line.strip() and not line.startswith("#") and "localhost" in line.split()[1:]}
    if not any(":" not in a for a in localhost):
        pytest.skip("/etc/hosts maps localhost to no IPv4 address")
    devices = [device("by-name", "localhost", count=2), device("no-icmp", "127.0.0.2", icmp=False),
               device("second", "127.0.0.3", count=2)]
    results = asyncio.run(ping_many(devices))
    assert [r.device for r in results] == ["by-name", "second"]
    assert results[0].ok and results[0].facts["address"] in localhost
    assert values(results[1])["icmp.loss_pct"] == 0.0


def test_bad_address_is_an_error_result_not_a_crash() -> None:
    # literals that are not addresses must fail here, without turning into DNS queries
    results = asyncio.run(ping_many([device("bad4", "300.1.2.3"), device("bad6", "fe80::zz"),
                                     device("good", "127.0.0.1", count=1)]))
    bad4, bad6, good = results
    for bad in (bad4, bad6):
        assert not bad.ok and not bad.samples
        assert "bad address" in bad.errors[0].message and bad.errors[0].retryable is False
    assert good.device == "good"


@pytest.mark.slow
@needs_icmp
def test_sweep_of_1000_loopback_addresses_keeps_rtts_honest_and_fast() -> None:
    addresses = [f"127.0.{i // 250}.{i % 250 + 1}" for i in range(1000)]
    start = time.monotonic()
    stats = asyncio.run(ping_addresses(addresses, count=3, interval_ms=20, timeout_ms=1000))
    elapsed = time.monotonic() - start
    assert list(stats) == addresses
    assert all(s.loss_pct == 0.0 for s in stats.values())
    worst = max(s.rtt_max_ms or 0.0 for s in stats.values())
    assert worst < 50.0, f"max RTT {worst:.1f} ms on loopback"
    assert elapsed < 10.0


@needs_icmp
def test_rtts_exclude_time_the_event_loop_was_busy() -> None:
    """A loop blocked for 150 ms at a time must not show up as 150 ms round trips."""

    async def sweep_while_stalling() -> dict[str, BurstStats]:
        stop = asyncio.Event()

        async def staller() -> None:
            while not stop.is_set():
                time.sleep(0.15)  # noqa: ASYNC251 - blocking the loop on purpose is the point
                await asyncio.sleep(0.01)

        task = asyncio.create_task(staller())
        try:
            return await ping_addresses([f"127.0.9.{i}" for i in range(1, 201)], count=4, interval_ms=20,
                                        timeout_ms=1000)
        finally:
            stop.set()
            await task

    stats = asyncio.run(sweep_while_stalling())
    assert all(s.loss_pct == 0.0 for s in stats.values())
    worst = max(s.rtt_max_ms or 0.0 for s in stats.values())
    assert worst < 50.0, f"max RTT {worst:.1f} ms although loopback answers in microseconds"


# --- a namespace: a real peer, a silent address, random loss ---------------------------------------


@pytest.mark.root
@needs_netns
def test_namespace_peer_answers_and_unassigned_address_is_unreachable_not_error(
        ns: netns_peer.Netns) -> None:
    before = ns.silenced()
    count, interval_ms, timeout_ms = 4, 10, 300
    start = time.monotonic()
    peer, silent = asyncio.run(ping_many([
        device("peer", ns.ns_addr, count=count, interval_ms=interval_ms, timeout_ms=timeout_ms),
        device("silent", ns.silent_addr, count=count, interval_ms=interval_ms, timeout_ms=timeout_ms)]))
    elapsed = time.monotonic() - start
    assert peer.ok and values(peer)["icmp.loss_pct"] == 0.0 and peer.facts["reachable"] is True
    assert silent.ok, "an unreachable device is a result, not an error"
    assert values(silent) == {"icmp.loss_pct": 100.0}
    assert silent.facts["reachable"] is False
    # the probes really reached the namespace and were swallowed there
    assert ns.silenced() - before == count
    assert elapsed < (count * interval_ms + timeout_ms) / 1000 + 2.0


@pytest.mark.root
@needs_netns
def test_loss_matches_what_nftables_dropped(ns: netns_peer.Netns) -> None:
    probes, pct = 200, 30
    ns.set_loss(pct)
    try:
        [stats] = asyncio.run(ping_addresses([ns.ns_addr], count=probes, interval_ms=2,
                                             timeout_ms=500)).values()
        dropped = ns.dropped()
    finally:
        ns.clear_loss()
    assert stats.sent == probes
    # exact: every probe the rule dropped, and only those, was lost
    assert stats.loss_pct == pytest.approx(100.0 * dropped / probes)
    # and the rule does what it says: 200 draws at p=0.3 have sd 3.2 points; 15..45 is > 4.6 sd
    assert 15.0 <= stats.loss_pct <= 45.0


# --- other users, other privileges ----------------------------------------------------------------


def _child_as(ns: netns_peer.Netns, specs: list[dict[str, str]], *, uid: int | None) -> list[dict[str, object]]:
    argv = [sys.executable, "-m", "tests.agent.pollers.icmp_child", json.dumps(specs)]
    if uid is not None:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/"}
    done = subprocess.run(ns.cmd(*argv), cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    out: list[dict[str, object]] = json.loads(done.stdout)
    return out


@pytest.mark.root
@needs_netns
def test_unprivileged_user_without_permission_gets_a_clear_error(ns: netns_peer.Netns) -> None:
    ns.sysctl("net.ipv4.ping_group_range", "1 0")  # the kernel default, per namespace
    [result] = _child_as(ns, [{"name": "a", "address": "127.0.0.1"}], uid=NOBODY)
    errors = result["errors"]
    assert isinstance(errors, list) and len(errors) == 1
    assert "ping_group_range" in errors[0] and "CAP_NET_RAW" in errors[0]
    assert result["samples"] == {}


@pytest.mark.root
@needs_netns
def test_unprivileged_user_pings_through_ping_sockets(ns: netns_peer.Netns) -> None:
    # widened inside our own namespace only: the host's setting is never touched
    ns.sysctl("net.ipv4.ping_group_range", f"{NOBODY} {NOBODY}")
    try:
        results = _child_as(ns, [{"name": "lo", "address": "127.0.0.1"},
                                 {"name": "host", "address": ns.host_addr}], uid=NOBODY)
    finally:
        ns.sysctl("net.ipv4.ping_group_range", "1 0")
    for r in results:
        assert r["errors"] == [], r
        assert r["samples"]["icmp.loss_pct"] == 0.0  # type: ignore[index]
        assert r["facts"]["socket"] == SocketKind.DGRAM.value  # type: ignore[index]


@pytest.mark.root
@needs_netns
def test_unresolvable_host_name_is_an_error_result(ns: netns_peer.Netns) -> None:
    # inside the namespace DNS goes to its own loopback, where nobody listens: no query leaves the host
    ns.write_etc("resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    results = _child_as(ns, [{"name": "ghost", "address": "no-such-device.invalid"},
                             {"name": "peer", "address": ns.host_addr}], uid=None)
    ghost, peer = results
    errors = ghost["errors"]
    assert isinstance(errors, list) and "no-such-device.invalid" in errors[0]
    assert ghost["samples"] == {}
    assert peer["errors"] == [] and peer["samples"]["icmp.loss_pct"] == 0.0  # type: ignore[index]


def test_forced_socket_kind_that_is_not_allowed_fails_every_device() -> None:
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as fh:
            low, high = (int(x) for x in fh.read().split())
    except OSError:
        pytest.skip("no ping_group_range here")
    if low <= os.getgid() <= high:
        pytest.skip("ping sockets are allowed for this group here")
    results = asyncio.run(ping_many([device("a", "127.0.0.1"), device("b", "127.0.0.2")],
                                    kind=SocketKind.DGRAM))
    assert [r.device for r in results] == ["a", "b"]
    for r in results:
        assert not r.ok and "ping_group_range" in r.errors[0].message and r.errors[0].retryable is False
