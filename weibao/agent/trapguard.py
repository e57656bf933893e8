"""The trap port's first line: every datagram pysnmp fails to read is counted and dropped, never a traceback.

The receiver listens on an unauthenticated UDP port: anyone who can reach it can send anything. pysnmp
raises on some malformed packets (a ``TypeError`` deep in its BER decoder for 32 bytes of noise), which
asyncio would log as a 2 KB traceback per packet. ``GuardedUdp`` wraps pysnmp's receive callback (the
public ``register_callback`` of its transport): a failure becomes one count in ``traps_malformed`` and a
line per source at most once a minute (``Throttle``), without a traceback.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6

from weibao.core.ratelog import Throttle

Callback = Callable[[Any, Any, bytes], None]


def normalise(host: str) -> str:
    """A source address as the inventory writes it (an IPv4-mapped IPv6 address as IPv4)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class PacketGuard:
    """Runs pysnmp's handling of one datagram; what raises is counted (``on_malformed``) and logged by source."""

    def __init__(self, throttle: Throttle, on_malformed: Callable[[], None]) -> None:
        self.throttle = throttle
        self.on_malformed = on_malformed

    def wrap(self, callback: Callback) -> Callback:
        def guarded(transport: Any, address: Any, datagram: bytes) -> None:
            try:
                callback(transport, address, datagram)
            except Exception as exc:  # a packet from the network that pysnmp cannot read: not our failure
                self.on_malformed()
                source = normalise(str(address[0])) if address else "?"
                self.throttle(source, "dropped an undecodable SNMP packet from %s (%d bytes: %s)", source,
                              len(datagram), type(exc).__name__)
        return guarded


class GuardedUdp(udp.UdpAsyncioTransport):  # type: ignore[misc]  # pysnmp ships no type information
    """pysnmp's IPv4 UDP transport, its receive callback run under a ``PacketGuard``."""

    def __init__(self, guard: PacketGuard) -> None:
        super().__init__()
        self._guard = guard

    def register_callback(self, cbFun: Callback) -> None:
        super().register_callback(self._guard.wrap(cbFun))


class GuardedUdp6(udp6.Udp6AsyncioTransport):  # type: ignore[misc]
    """pysnmp's IPv6 UDP transport, its receive callback run under a ``PacketGuard``."""

    def __init__(self, guard: PacketGuard) -> None:
        super().__init__()
        self._guard = guard

    def register_callback(self, cbFun: Callback) -> None:
        super().register_callback(self._guard.wrap(cbFun))


def guarded_transport(family: socket.AddressFamily, guard: PacketGuard) -> GuardedUdp | GuardedUdp6:
    return GuardedUdp6(guard) if family == socket.AF_INET6 else GuardedUdp(guard)
