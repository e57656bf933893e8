"""ICMP and ICMPv6 echo messages: building requests and recognising replies."""

from __future__ import annotations

import socket
import struct

ECHO_REQUEST_V4 = 8
ECHO_REPLY_V4 = 0
ECHO_REQUEST_V6 = 128
ECHO_REPLY_V6 = 129

_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
PAYLOAD_SIZE = 56  # what ping and fping send by default, so a path sees familiar packets


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(family: int, ident: int, seq: int, cookie: bytes) -> bytes:
    """An echo request whose payload starts with ``cookie`` (padded to the usual 56 bytes).

    The checksum is filled for IPv4 raw sockets; for ICMPv6 and for unprivileged ping sockets
    the kernel computes it anyway.
    """
    payload = cookie + bytes(max(0, PAYLOAD_SIZE - len(cookie)))
    kind = ECHO_REQUEST_V4 if family == socket.AF_INET else ECHO_REQUEST_V6
    bare = _HEADER.pack(kind, 0, 0, ident, seq) + payload
    if family != socket.AF_INET:
        return bare
    return _HEADER.pack(kind, 0, checksum(bare), ident, seq) + payload


def parse_echo_reply(data: bytes, family: int, has_ip_header: bool) -> tuple[int, int, bytes] | None:
    """``(identifier, sequence, payload)`` of an echo reply, or None for anything else.

    Raw IPv4 sockets hand over the IP header too; ICMPv6 and ping sockets hand over ICMP only.
    """
    offset = 0
    if has_ip_header:
        if not data:
            return None
        offset = (data[0] & 0x0F) * 4
    if len(data) < offset + _HEADER.size:
        return None
    kind, code, _sum, ident, seq = _HEADER.unpack_from(data, offset)
    expected = ECHO_REPLY_V4 if family == socket.AF_INET else ECHO_REPLY_V6
    if kind != expected or code != 0:
        return None
    return ident, seq, data[offset + _HEADER.size:]
