"""The ICMP poller: one echo burst per device, turned into loss, latency and jitter samples."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Iterable, Sequence

from weibao.agent.errors import PollFailure
from weibao.agent.inventory import Device
from weibao.agent.pollers.icmp.pinger import DEFAULT_RATE_PPS, IpAddress, Pinger
from weibao.agent.pollers.icmp.sockets import SocketKind
from weibao.agent.pollers.icmp.stats import BurstStats
from weibao.core.model import PollResult, Protocol, Sample

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT_S = 5.0
# looks like an address literal, so a failure to parse it must not turn into a DNS query
_LITERALISH = re.compile(r"^[0-9.]+$|:")


class BadAddress(PollFailure):
    """The device's address is neither a valid IP address nor a host name."""


class ResolveFailure(PollFailure):
    """The device's host name did not resolve (DNS may come back: retryable)."""

    retryable = True


async def resolve(address: str, *, timeout_s: float = RESOLVE_TIMEOUT_S) -> IpAddress:
    """The IP address to ping for ``address``: the literal itself, or the host name's first IPv4
    address (IPv6 when it has none)."""
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        if _LITERALISH.search(address):
            raise BadAddress(f"bad address {address!r}: not a valid IP address") from None
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(address, None, type=socket.SOCK_DGRAM), timeout_s)
    except TimeoutError:
        raise ResolveFailure(f"cannot resolve host name {address!r}: no answer in {timeout_s:g} s") from None
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else str(exc)
        raise ResolveFailure(f"cannot resolve host name {address!r}: {reason}") from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos
             if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not found:
        raise ResolveFailure(f"cannot resolve host name {address!r}: no IPv4 or IPv6 address")
    return next((a for a in found if a.version == 4), found[0])


def burst_samples(device: str, stats: BurstStats) -> list[Sample]:
    """The samples of one burst, all stamped with the burst's start.

    Always ``icmp.loss_pct``; with at least one reply ``icmp.rtt_ms`` (mean), ``icmp.rtt_min_ms``
    and ``icmp.rtt_max_ms``; with at least two, ``icmp.jitter_ms`` (see BurstStats.jitter_ms).
    """
    ts = stats.started
    out = [Sample(device, "icmp.loss_pct", stats.loss_pct, ts)]
    values = (("icmp.rtt_ms", stats.rtt_avg_ms), ("icmp.rtt_min_ms", stats.rtt_min_ms),
              ("icmp.rtt_max_ms", stats.rtt_max_ms), ("icmp.jitter_ms", stats.jitter_ms))
    out.extend(Sample(device, metric, round(value, 4), ts) for metric, value in values if value is not None)
    return out


async def _poll_one(pinger: Pinger, device: Device, gate: asyncio.Semaphore) -> PollResult:
    result = PollResult(device.name, Protocol.ICMP)
    settings = device.icmp
    if settings is None:  # filtered out by the caller; kept for the type checker
        return result.fail("ICMP is not enabled for this device", retryable=False)
    try:
        async with gate:
            target = await resolve(device.address)
            stats = await pinger.burst(target, count=settings.count, interval_ms=settings.interval_ms,
                                       timeout_ms=settings.timeout_ms)
            kind = pinger.socket_kind(socket.AF_INET if target.version == 4 else socket.AF_INET6)
    except PollFailure as exc:
        return result.fail(str(exc), retryable=exc.retryable)
    except OSError as exc:
        return result.fail(f"ICMP to {device.address} failed: {exc.strerror or exc}", retryable=True)
    except Exception as exc:
        log.exception("ICMP poll of %s failed unexpectedly", device.name)
        return result.fail(f"ICMP poll failed: {type(exc).__name__}: {exc}", retryable=True)
    result.samples.extend(burst_samples(device.name, stats))
    result.facts.update(reachable=stats.received > 0, address=stats.address, sent=stats.sent,
                        received=stats.received, socket=kind.value)
    if stats.send_errors:
        result.facts["send_errors"] = list(stats.send_errors)
    return result


async def ping_many(devices: Sequence[Device], *, max_in_flight: int = 500,
                    rate_pps: float = DEFAULT_RATE_PPS, kind: SocketKind | None = None) -> list[PollResult]:
    """One ICMP PollResult per device whose ``icmp`` is set, in input order; never raises for a device.

    All bursts share one event loop and one socket per address family; at most ``max_in_flight``
    devices are being probed at once and all sends together stay under ``rate_pps``. An unreachable
    device is a result (loss 100, ``facts["reachable"] = False``), not an error.
    """
    targets = [d for d in devices if d.icmp is not None]
    gate = asyncio.Semaphore(max(1, max_in_flight))
    async with Pinger(rate_pps=rate_pps, kind=kind) as pinger:
        return list(await asyncio.gather(*(_poll_one(pinger, d, gate) for d in targets)))


class IcmpPoller:
    """The ICMP poller as the registry runs it (``ping_many``: one socket per family for the round)."""

    async def poll_many(self, devices: Sequence[Device]) -> list[PollResult]:
        return await ping_many(devices)

    def close(self) -> None:
        return None


async def ping_addresses(addresses: Iterable[str], count: int = 5, interval_ms: float = 20,
                         timeout_ms: float = 1000, *, max_in_flight: int = 500,
                         rate_pps: float = DEFAULT_RATE_PPS,
                         kind: SocketKind | None = None) -> dict[str, BurstStats]:
    """Burst-ping IP address literals concurrently; the stats of each, keyed by the address as given.

    Lower level than ping_many (no devices, no host names): raises ValueError for a bad literal,
    IcmpUnavailable when no ICMP socket can be opened, OSError for an unexpected send failure.
    """
    wanted = list(dict.fromkeys(addresses))
    parsed = [ipaddress.ip_address(a) for a in wanted]
    gate = asyncio.Semaphore(max(1, max_in_flight))

    async def one(pinger: Pinger, target: IpAddress) -> BurstStats:
        async with gate:
            return await pinger.burst(target, count=count, interval_ms=interval_ms, timeout_ms=timeout_ms)

    async with Pinger(rate_pps=rate_pps, kind=kind) as pinger:
        results = await asyncio.gather(*(one(pinger, t) for t in parsed))
    return dict(zip(wanted, results, strict=True))
