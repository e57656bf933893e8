"""Many concurrent echo bursts over one ICMP socket per address family, in one event loop.

Round-trip times must stay honest when thousands of probes are in flight and the event loop is
late: the send time is taken immediately before ``sendto`` and the receive time is the kernel's
timestamp of the reply (SO_TIMESTAMPNS), so time a reply spends queued in the socket while the
loop is busy is not counted. Replies are matched by (source address, sequence), checked against
the socket's identifier and a per-socket payload cookie. A global pacer spaces all sends so a large
sweep does not burst thousands of packets at once.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import secrets
import socket
import struct
import time
from dataclasses import dataclass
from types import TracebackType

from weibao.agent.pollers.icmp.packet import echo_request, parse_echo_reply
from weibao.agent.pollers.icmp.sockets import SO_TIMESTAMPNS, IcmpSocket, SocketKind, open_icmp_socket
from weibao.agent.pollers.icmp.stats import BurstStats
from weibao.core.model import utcnow

log = logging.getLogger(__name__)

DEFAULT_RATE_PPS = 10_000.0
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_TIMESPEC = struct.Struct("@ll")
_RECV_BYTES = 2048
_ANC_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)
_MAX_PER_DRAIN = 4096  # bounded so one flood of replies cannot starve the rest of the loop
_SEND_RETRIES = 50  # a full send buffer: wait 1 ms and try again, this many times at most
# a send failing with these means the address is unreachable right now: a lost probe, not a fault of ours
_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENONET,
                          errno.ENOBUFS, errno.EAGAIN})


@dataclass(slots=True)
class _Probe:
    tx_ns: int  # CLOCK_REALTIME, like the kernel's receive timestamps
    reply: asyncio.Future[int]  # resolves to the kernel's receive time of the first matching reply


class _Pacer:
    """Hands out send slots at most ``rate_pps`` apart, first come first served."""

    def __init__(self, rate_pps: float) -> None:
        if rate_pps <= 0:
            raise ValueError("rate_pps must be positive")
        self._gap_ns = int(1e9 / rate_pps)
        self._next_ns = 0

    async def wait(self) -> None:
        now = time.monotonic_ns()
        slot = max(now, self._next_ns)
        self._next_ns = slot + self._gap_ns
        if slot > now:
            await asyncio.sleep((slot - now) / 1e9)


class _Channel:
    """One ICMP socket, its in-flight probes, and the reader that matches replies to them."""

    def __init__(self, isock: IcmpSocket, loop: asyncio.AbstractEventLoop) -> None:
        self.isock = isock
        self._loop = loop
        self._pending: dict[tuple[str, int], _Probe] = {}
        self._seq = secrets.randbits(16)
        self._v4 = isock.family == socket.AF_INET
        loop.add_reader(isock.sock.fileno(), self.drain)

    def close(self) -> None:
        self._loop.remove_reader(self.isock.sock.fileno())
        self.isock.sock.close()
        for probe in self._pending.values():
            probe.reply.cancel()
        self._pending.clear()

    def send(self, addr: str) -> tuple[int, _Probe]:
        """Send one echo request to ``addr``; returns its sequence number and in-flight record.

        Probes are filed under the address without any IPv6 zone (``%eth0``), as replies show it.
        """
        key = addr.split("%", 1)[0]
        for _ in range(0x10000):
            self._seq = (self._seq + 1) & 0xFFFF
            if (key, self._seq) not in self._pending:
                break
        seq = self._seq
        packet = echo_request(self.isock.family, self.isock.ident, seq, self.isock.cookie)
        dest = (addr, 0) if self._v4 else (addr, 0, 0, 0)
        probe = _Probe(0, self._loop.create_future())
        self._pending[(key, seq)] = probe
        try:
            probe.tx_ns = time.time_ns()
            self.isock.sock.sendto(packet, dest)
        except BaseException:
            self.forget(addr, seq)
            raise
        return seq, probe

    def forget(self, addr: str, seq: int) -> None:
        probe = self._pending.pop((addr.split("%", 1)[0], seq), None)
        if probe is not None and not probe.reply.done():
            probe.reply.cancel()

    def drain(self) -> None:
        """Read every reply already queued on the socket (called by the loop, and before a verdict)."""
        sock = self.isock.sock
        for _ in range(_MAX_PER_DRAIN):
            try:
                data, ancdata, _flags, src = sock.recvmsg(_RECV_BYTES, _ANC_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # an ICMP error queued on the socket (e.g. host unreachable): the probe just stays lost
                log.debug("ICMP socket reported %s", exc)
                continue
            rx_ns = 0
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack_from(value)
                    rx_ns = sec * 1_000_000_000 + nsec
            if not rx_ns:
                rx_ns = time.time_ns()
            parsed = parse_echo_reply(data, self.isock.family, self.isock.has_ip_header)
            if parsed is None:
                continue
            ident, seq, payload = parsed
            if ident != self.isock.ident or not payload.startswith(self.isock.cookie):
                continue
            source = src[0] if self._v4 else ipaddress.ip_address(src[0].split("%", 1)[0]).compressed
            probe = self._pending.get((source, seq))
            if probe is not None and not probe.reply.done():
                probe.reply.set_result(rx_ns)


class Pinger:
    """Runs echo bursts to many addresses concurrently; use as ``async with Pinger() as p``.

    Opens at most one socket per address family, on first use. ``kind`` forces ping or raw sockets;
    by default a ping socket is tried first, then a raw one.
    """

    def __init__(self, *, rate_pps: float = DEFAULT_RATE_PPS, kind: SocketKind | None = None) -> None:
        self._pacer = _Pacer(rate_pps)
        self._kind = kind
        self._channels: dict[int, _Channel] = {}
        self._failures: dict[int, Exception] = {}

    async def __aenter__(self) -> Pinger:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for chan in self._channels.values():
            chan.close()
        self._channels.clear()

    def socket_kind(self, family: int) -> SocketKind:
        """The kind of socket used for ``family`` (opening it if needed; raises IcmpUnavailable)."""
        return self._channel(family).isock.kind

    def _channel(self, family: int) -> _Channel:
        chan = self._channels.get(family)
        if chan is not None:
            return chan
        failure = self._failures.get(family)
        if failure is not None:
            raise failure
        try:
            isock = open_icmp_socket(family, self._kind)
        except Exception as exc:
            self._failures[family] = exc
            raise
        chan = self._channels[family] = _Channel(isock, asyncio.get_running_loop())
        return chan

    async def burst(self, address: IpAddress, *, count: int, interval_ms: float,
                    timeout_ms: float) -> BurstStats:
        """Send ``count`` echo requests to ``address``, ``interval_ms`` apart, and wait for the replies.

        A probe counts as answered when its reply's kernel receive time is within ``timeout_ms`` of
        its send time. Raises IcmpUnavailable, or OSError for a send failure that is not plain
        unreachability (e.g. a broadcast address or a firewall's EPERM).
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        chan = self._channel(socket.AF_INET if address.version == 4 else socket.AF_INET6)
        addr = address.compressed
        started = utcnow()
        probes: list[_Probe | None] = []
        seqs: list[int] = []
        send_errors: list[str] = []
        timeout_ns = int(timeout_ms * 1e6)
        last_mono = next_due = time.monotonic_ns()
        try:
            for k in range(count):
                if k:
                    delay = next_due - time.monotonic_ns()
                    if delay > 0:
                        await asyncio.sleep(delay / 1e9)
                await self._pacer.wait()
                probe = await self._send(chan, addr, seqs, send_errors)
                last_mono = time.monotonic_ns()
                next_due = last_mono + int(interval_ms * 1e6)
                probes.append(probe)
            waiting = [p.reply for p in probes if p is not None]
            if waiting:
                remaining = (last_mono + timeout_ns - time.monotonic_ns()) / 1e9
                if remaining > 0:
                    await asyncio.wait(waiting, timeout=remaining)
                chan.drain()  # replies the kernel already holds count, however late the loop is
            rtts: list[float | None] = []
            for p in probes:
                if p is None or not p.reply.done() or p.reply.cancelled():
                    rtts.append(None)
                    continue
                rtt_ns = max(0, p.reply.result() - p.tx_ns)
                rtts.append(rtt_ns / 1e6 if rtt_ns <= timeout_ns else None)
        finally:
            for seq in seqs:
                chan.forget(addr, seq)
        return BurstStats(addr, started, tuple(rtts), tuple(dict.fromkeys(send_errors)))

    @staticmethod
    async def _send(chan: _Channel, addr: str, seqs: list[int], send_errors: list[str]) -> _Probe | None:
        for _ in range(_SEND_RETRIES):
            try:
                seq, probe = chan.send(addr)
            except BlockingIOError:
                await asyncio.sleep(0.001)
                continue
            except OSError as exc:
                if exc.errno not in _UNREACHABLE:
                    raise
                send_errors.append(exc.strerror or os.strerror(exc.errno or 0))
                return None
            seqs.append(seq)
            return probe
        send_errors.append("send buffer full")
        return None
