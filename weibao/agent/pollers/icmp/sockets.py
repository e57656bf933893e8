"""Opening ICMP sockets: unprivileged ping sockets or raw sockets, tuned for sweeps.

A ping socket (``SOCK_DGRAM``/``IPPROTO_ICMP``) needs the process's group inside
``net.ipv4.ping_group_range`` (per network namespace, default ``1 0``: nobody); the kernel then
rewrites the echo identifier to the socket's local "port" and hands the socket only its own replies.
A raw socket needs CAP_NET_RAW and sees every ICMP message of the host, so it filters by type in the
kernel and by identifier and payload cookie here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from weibao.agent.errors import PollFailure
from weibao.agent.pollers.icmp.packet import ECHO_REPLY_V4, ECHO_REPLY_V6

log = logging.getLogger(__name__)

# Linux constants the socket module does not export (asm-generic values; x86, arm, riscv...)
SO_TIMESTAMPNS = 35  # == SCM_TIMESTAMPNS: kernel receive time as struct timespec
SO_RCVBUFFORCE = 33  # beyond net.core.rmem_max, needs CAP_NET_ADMIN
SOL_RAW = 255
ICMP_FILTER = 1  # SOL_RAW: bit n set = drop ICMP type n before it reaches us
ICMP6_FILTER = 1  # IPPROTO_ICMPV6: 256-bit mask, bit n set = block type n

RCVBUF_BYTES = 8 << 20  # a thousand devices answering at once must not overflow the queue
SNDBUF_BYTES = 1 << 20
_PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")


class SocketKind(StrEnum):
    DGRAM = "dgram"  # unprivileged ping socket
    RAW = "raw"


class IcmpUnavailable(PollFailure):
    """No ICMP socket can be opened: neither ping sockets nor raw sockets are allowed."""

    retryable = False


@dataclass(frozen=True, slots=True)
class IcmpSocket:
    """An open, non-blocking ICMP socket and how to recognise our replies on it."""

    sock: socket.socket
    family: int
    kind: SocketKind
    ident: int  # identifier our replies carry (the local port for ping sockets)
    cookie: bytes  # start of our payload: tells our replies from other pingers' on a raw socket

    @property
    def has_ip_header(self) -> bool:
        return self.family == socket.AF_INET and self.kind is SocketKind.RAW


def _proto(family: int) -> int:
    return socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6


def _tune(sock: socket.socket, family: int, kind: SocketKind) -> None:
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
    except PermissionError:
        # unprivileged: the kernel caps this at net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF_BYTES)
    if kind is SocketKind.RAW:
        if family == socket.AF_INET:
            sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << ECHO_REPLY_V4) & 0xFFFFFFFF))
        else:
            words = [0xFFFFFFFF] * 8
            words[ECHO_REPLY_V6 >> 5] &= ~(1 << (ECHO_REPLY_V6 & 31)) & 0xFFFFFFFF
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))


def _open(family: int, kind: SocketKind) -> IcmpSocket:
    stype = socket.SOCK_DGRAM if kind is SocketKind.DGRAM else socket.SOCK_RAW
    sock = socket.socket(family, stype, _proto(family))
    try:
        _tune(sock, family, kind)
        if kind is SocketKind.DGRAM:
            # bind now so the identifier the kernel will put on our requests is known before sending
            sock.bind(("0.0.0.0", 0) if family == socket.AF_INET else ("::", 0))  # noqa: S104 - a ping socket only picks its identifier here
            ident = sock.getsockname()[1]
        else:
            ident = (os.getpid() ^ secrets.randbits(16)) & 0xFFFF
    except BaseException:
        sock.close()
        raise
    return IcmpSocket(sock, family, kind, ident, secrets.token_bytes(8))


def _fix_hint(errors: dict[SocketKind, OSError]) -> str:
    try:
        current = " ".join(_PING_GROUP_RANGE.read_text().split())
    except OSError:
        current = "unknown"
    gid = os.getgid()
    tried = "; ".join(f"{kind.value}: {exc.strerror or exc}" for kind, exc in errors.items())
    return (
        f"cannot open an ICMP socket ({tried}). Unprivileged ping sockets need group id {gid} inside "
        f"net.ipv4.ping_group_range (now '{current}'), e.g. `sysctl -w net.ipv4.ping_group_range="
        f"\"{gid} {gid}\"`; raw sockets need CAP_NET_RAW (run as root, or "
        "`setcap cap_net_raw+ep` on the Python interpreter, or AmbientCapabilities=CAP_NET_RAW in the unit)"
    )


def open_icmp_socket(family: int, kind: SocketKind | None = None) -> IcmpSocket:
    """Open an ICMP socket for ``family``: a ping socket if allowed, else a raw socket.

    ``kind`` forces one of the two. Raises IcmpUnavailable, with how to fix it, when none is allowed.
    """
    kinds = [kind] if kind is not None else [SocketKind.DGRAM, SocketKind.RAW]
    errors: dict[SocketKind, OSError] = {}
    for k in kinds:
        try:
            opened = _open(family, k)
        except OSError as exc:
            errors[k] = exc
            continue
        log.debug("opened %s ICMP socket family=%s ident=%d", k.value, family, opened.ident)
        return opened
    if any(isinstance(e, PermissionError) for e in errors.values()):
        raise IcmpUnavailable(_fix_hint(errors))
    tried = "; ".join(f"{k.value}: {e.strerror or e}" for k, e in errors.items())
    fam = "IPv4" if family == socket.AF_INET else "IPv6"
    raise IcmpUnavailable(f"cannot open an {fam} ICMP socket ({tried})")
