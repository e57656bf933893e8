"""ICMP echo bursts to many devices at once: loss, round-trip time (mean, min, max) and jitter.

    ping_many(devices)         -> one PollResult per device (IcmpPoller, the registry's entry point)
    ping_addresses(addresses)  -> BurstStats per IP literal (for sweeps and benchmarks)
    Pinger                     -> the engine both use: one socket per family, kernel timestamps
"""

from weibao.agent.pollers.icmp.pinger import DEFAULT_RATE_PPS, Pinger
from weibao.agent.pollers.icmp.poller import (
    BadAddress,
    IcmpPoller,
    ResolveFailure,
    burst_samples,
    ping_addresses,
    ping_many,
    resolve,
)
from weibao.agent.pollers.icmp.sockets import IcmpUnavailable, SocketKind, open_icmp_socket
from weibao.agent.pollers.icmp.stats import BurstStats

__all__ = [
    "DEFAULT_RATE_PPS",
    "BadAddress",
    "BurstStats",
    "IcmpPoller",
    "IcmpUnavailable",
    "Pinger",
    "ResolveFailure",
    "SocketKind",
    "burst_samples",
    "open_icmp_socket",
    "ping_addresses",
    "ping_many",
    "resolve",
]
