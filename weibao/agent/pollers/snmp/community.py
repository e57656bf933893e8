"""SNMPv1/v2c requests over one asyncio UDP socket, with the BER codec of ``ber.py`` (SNMPv3 stays with pysnmp).

One socket per address family serves every device; answers are matched to requests by
request-id (random start, unique while in flight) and community. A retry resends the same
request-id, so a late answer to the first try is still taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from weibao.agent.errors import DeviceTimeout, ProtocolFailure
from weibao.agent.pollers.snmp import ber
from weibao.agent.pollers.snmp.values import Oid, SnmpErrorStatus, VarBind

log = logging.getLogger(__name__)

_RCVBUF = 4 << 20  # many devices answering at once must not overflow the socket buffer


@dataclass
class _Pending:
    future: asyncio.Future[bytes]
    community: bytes = field(repr=False)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, client: CommunityClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.client._received(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the request times out as it would without it
        log.debug("SNMP socket error: %s", exc)


class CommunityClient:
    """GET / GETNEXT / GETBULK for v1 and v2c; create and use inside one event loop."""

    def __init__(self) -> None:
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._opening = asyncio.Lock()
        self._pending: dict[int, _Pending] = {}
        self._next_id = random.randrange(1, 2**30)

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        t = self._transports.get(family)
        if t is not None and not t.is_closing():
            return t
        # the first requests of a round arrive together: without the lock each would open its own
        # socket and all but the last would stay open (a socket and its buffers per device per round)
        async with self._opening:
            t = self._transports.get(family)
            if t is None or t.is_closing():
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
                    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))  # noqa: S104  # a client port
                    sock.setblocking(False)
                    loop = asyncio.get_running_loop()
                    t, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
                except BaseException:
                    sock.close()
                    raise
                self._transports[family] = t
        return t

    def _new_id(self) -> int:
        while True:
            self._next_id = self._next_id + 1 if self._next_id < 2**31 - 1 else 1
            if self._next_id not in self._pending:
                return self._next_id

    def _received(self, data: bytes) -> None:
        try:
            request_id = ber.peek_request_id(data)
        except ber.BerError:
            return
        pending = self._pending.get(request_id)
        if pending is None or pending.future.done():
            return  # an answer to a request given up on, or not ours
        pending.future.set_result(data)

    async def request(self, host: str, port: int, version: int, community: bytes, pdu_type: int,
                      oids: Sequence[Oid], *, timeout_s: float, retries: int,
                      max_repetitions: int = 0) -> list[VarBind]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        transport = await self._transport(family)
        request_id = self._new_id()
        message = ber.encode_request(version, community, pdu_type, request_id, oids,
                                     max_repetitions=max_repetitions)
        loop = asyncio.get_running_loop()
        pending = _Pending(loop.create_future(), community)
        self._pending[request_id] = pending
        try:
            for _ in range(retries + 1):
                transport.sendto(message, (host, port))
                try:
                    data = await asyncio.wait_for(asyncio.shield(pending.future), timeout_s)
                    break
                except TimeoutError:
                    continue
            else:
                raise DeviceTimeout(f"no answer from {host}:{port} within {timeout_s:g} s ({retries + 1} tries)")
        finally:
            self._pending.pop(request_id, None)
            if not pending.future.done():
                pending.future.cancel()
        try:
            _v, got_community, pdu, _rid, status, index, binds = ber.decode_response(data)
        except ber.BerError as exc:
            raise ProtocolFailure(f"malformed SNMP answer from {host}:{port}: {exc}") from exc
        if pdu != ber.RESPONSE or got_community != community:
            raise ProtocolFailure(f"unexpected SNMP answer from {host}:{port}")
        if status:
            raise SnmpErrorStatus(status, index)
        return binds

    def close(self) -> None:
        for t in self._transports.values():
            t.close()
        self._transports.clear()
        for p in self._pending.values():
            if not p.future.done():
                p.future.cancel()
        self._pending.clear()
