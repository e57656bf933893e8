"""BER encoding and decoding of SNMPv1/v2c messages (RFC 1157, RFC 3416), just what a manager needs.

Why our own: decoding a response with pyasn1 (what pysnmp does) cost ~150 us per varbind here,
which made the poller CPU-bound at a few dozen IF-MIB devices per second on two cores. A v1/v2c
message is a handful of TLVs; decoding it directly is an order of magnitude cheaper. SNMPv3 (USM
authentication and privacy) stays with pysnmp.

Values decode to ``int`` (INTEGER, Counter32/64, Gauge32, TimeTicks), ``str`` (OCTET STRING
decoded as UTF-8 when printable, else hex; OBJECT IDENTIFIER and IpAddress as dotted text) or
``Missing`` (noSuchObject, noSuchInstance, endOfMibView, NULL).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from weibao.agent.pollers.snmp.values import Missing, Oid, Value, VarBind

GET, GETNEXT, RESPONSE, GETBULK, REPORT = 0xA0, 0xA1, 0xA2, 0xA5, 0xA8


class BerError(ValueError):
    """The bytes are not a well-formed SNMP message."""


# --- encoding ---------------------------------------------------------------------------------


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _len(len(body)) + body


def _int(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


@lru_cache(maxsize=65536)  # a poller asks for the same columns every round
def _oid(oid: Oid) -> bytes:
    if len(oid) < 2:
        raise BerError(f"OID {oid} has fewer than two arcs")
    out = bytearray()
    for i, arc in enumerate((oid[0] * 40 + oid[1], *oid[2:])):
        if arc < 0 or (i == 0 and oid[0] > 2):
            raise BerError(f"bad OID {oid}")
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return _tlv(0x06, bytes(out))


def encode_request(version: int, community: bytes, pdu_type: int, request_id: int, oids: Sequence[Oid],
                   *, non_repeaters: int = 0, max_repetitions: int = 0) -> bytes:
    """A GET / GETNEXT / GETBULK message; ``version`` 0 is v1, 1 is v2c."""
    binds = b"".join(_tlv(0x30, _oid(o) + b"\x05\x00") for o in oids)
    second, third = (non_repeaters, max_repetitions) if pdu_type == GETBULK else (0, 0)
    pdu = _tlv(pdu_type, _int(request_id) + _int(second) + _int(third) + _tlv(0x30, binds))
    return _tlv(0x30, _int(version) + _tlv(0x04, community) + pdu)


# --- decoding ---------------------------------------------------------------------------------


def _head(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the TLV at ``pos``."""
    if pos + 2 > end:
        raise BerError("truncated")
    tag = buf[pos]
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > end:
            raise BerError("bad length")
        n = int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    if pos + n > end:
        raise BerError("truncated")
    return tag, pos, pos + n


_OID_CACHE: dict[bytes, Oid] = {}
_OID_CACHE_MAX = 200_000


def _decode_oid(buf: bytes, start: int, end: int) -> Oid:
    raw = buf[start:end]
    hit = _OID_CACHE.get(raw)
    if hit is not None:
        return hit
    oid = _decode_oid_raw(raw)
    if len(_OID_CACHE) >= _OID_CACHE_MAX:
        _OID_CACHE.clear()  # bounded memory; it refills with what is polled now
    _OID_CACHE[raw] = oid
    return oid


def _decode_oid_raw(raw: bytes) -> Oid:
    arcs: list[int] = []
    acc = 0
    for b in raw:
        acc = (acc << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(acc)
            acc = 0
    if not arcs:
        raise BerError("empty OID")
    first = arcs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    return (*head, *arcs[1:])


def _text(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").rstrip("\x00")
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        return text
    return raw.hex(":")


_MISSING = {0x80: Missing("noSuchObject"), 0x81: Missing("noSuchInstance"), 0x82: Missing("endOfMibView"),
            0x05: Missing("null")}


def _value(tag: int, buf: bytes, start: int, end: int) -> Value:
    if tag == 0x02:
        return int.from_bytes(buf[start:end], "big", signed=True)
    if tag in (0x41, 0x42, 0x43, 0x46, 0x47):  # Counter32, Gauge32, TimeTicks, Counter64, UInteger32
        return int.from_bytes(buf[start:end], "big")
    if tag == 0x04 or tag == 0x44:  # OCTET STRING, Opaque
        return _text(bytes(buf[start:end]))
    if tag == 0x06:
        return ".".join(map(str, _decode_oid(buf, start, end)))
    if tag == 0x40:
        return ".".join(str(b) for b in buf[start:end])
    missing = _MISSING.get(tag)
    if missing is not None:
        return missing
    return bytes(buf[start:end]).hex(":")


def peek_request_id(buf: bytes) -> int:
    """The request-id of a message, read without decoding the rest (to find who is waiting for it)."""
    end = len(buf)
    _tag, pos, end = _head(buf, 0, end)
    _t, _s, pos = _head(buf, pos, end)  # version
    _t, _s, pos = _head(buf, pos, end)  # community
    _t, pos, end = _head(buf, pos, end)  # PDU
    _t, s, e = _head(buf, pos, end)
    return int.from_bytes(buf[s:e], "big", signed=True)


def decode_response(buf: bytes) -> tuple[int, bytes, int, int, int, int, list[VarBind]]:
    """(version, community, pdu type, request-id, error-status, error-index, varbinds) of a message."""
    tag, pos, end = _head(buf, 0, len(buf))
    if tag != 0x30:
        raise BerError("not a SEQUENCE")
    tag, s, pos = _head(buf, pos, end)
    if tag != 0x02:
        raise BerError("no version")
    version = int.from_bytes(buf[s:pos], "big")
    tag, s, pos = _head(buf, pos, end)
    if tag != 0x04:
        raise BerError("no community")
    community = bytes(buf[s:pos])
    pdu_type, pos, end = _head(buf, pos, end)
    fields = []
    for _ in range(3):
        tag, s, pos = _head(buf, pos, end)
        if tag != 0x02:
            raise BerError("bad PDU header")
        fields.append(int.from_bytes(buf[s:pos], "big", signed=True))
    tag, pos, lend = _head(buf, pos, end)
    if tag != 0x30:
        raise BerError("no varbind list")
    binds: list[VarBind] = []
    while pos < lend:
        tag, vpos, vend = _head(buf, pos, lend)
        if tag != 0x30:
            raise BerError("bad varbind")
        tag, s, e = _head(buf, vpos, vend)
        if tag != 0x06:
            raise BerError("varbind without OID")
        oid = _decode_oid(buf, s, e)
        vtag, s2, e2 = _head(buf, e, vend)
        binds.append((oid, _value(vtag, buf, s2, e2)))
        pos = vend
    return version, community, pdu_type, fields[0], fields[1], fields[2], binds
