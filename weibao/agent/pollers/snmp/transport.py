"""SNMP transport for the poller: one pysnmp engine, one UDP socket, GET / GETNEXT / GETBULK with our own retries.

Why not pysnmp's hlapi (``get_cmd`` and friends): every new ``UdpTransportTarget`` adds a row to the
engine's SNMP-TARGET-MIB, and every such change makes the v1/v2c security module rebuild its
transport-to-tag map by walking the whole table on the next response (``_com2sec`` in
``pysnmp/proto/secmod/rfc2576.py``). First contact with N new targets therefore costs O(N^2)
(1,000 targets: 23-30 s). Here requests go straight to the engine's message dispatcher
(``message_dispatcher.send_pdu``), the same call pysnmp's own command generator makes after it has
looked up its target row. The target table stays empty, the only LCD entries are one per credential
(communities, USM users), and the cost per request no longer depends on how many devices exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as lcd
from pysnmp.entity.engine import SnmpEngine
from pysnmp.proto import errind, rfc1902, rfc1905
from pysnmp.proto.api import v2c
from pysnmp.proto.proxy import rfc2576

from weibao.agent.errors import AuthFailure, DeviceTimeout, ProtocolFailure
from weibao.agent.inventory.model import SnmpCredential
from weibao.agent.pollers.snmp import ber
from weibao.agent.pollers.snmp.community import CommunityClient
from weibao.agent.pollers.snmp.values import Missing, Oid, SnmpErrorStatus, Value, VarBind, oid_text, parse_oid

log = logging.getLogger(__name__)

__all__ = ["Missing", "Oid", "SnmpErrorStatus", "SnmpTransport", "Target", "Value", "VarBind", "oid_text", "parse_oid"]

_AUTH = {
    "SHA": lcd.USM_AUTH_HMAC96_SHA,
    "SHA-256": lcd.USM_AUTH_HMAC192_SHA256,
    "SHA-512": lcd.USM_AUTH_HMAC384_SHA512,
}
# net-snmp's "AES-256" extends the localised key the Blumenthal way (draft-blumenthal-aes-usm-04);
# the Reeder/Cisco way is its "AES-256-C". They differ only when the auth hash is shorter than 32 bytes
# (SHA-1): proven against snmpd in tests/agent/pollers/test_snmp_v3.py.
_PRIV = {
    "AES-128": lcd.USM_PRIV_CFB128_AES,
    "AES-256": lcd.USM_PRIV_CFB256_AES_BLUMENTHAL,
}
_DISCOVERY_RETRIES = 4  # unknownEngineID / notInTimeWindow rounds of SNMPv3 discovery, as pysnmp does
_TICK_S = 0.05
_AUTH_ERRORS = (errind.UnknownUserName, errind.WrongDigest, errind.AuthenticationFailure,
                errind.UnsupportedSecurityLevel, errind.DecryptionError, errind.UnknownCommunityName,
                errind.AuthenticationError)


def to_python(value: Any) -> Value:
    """pysnmp value -> int / str / Missing (numbers stay exact; strings are decoded leniently)."""
    if isinstance(value, rfc1905.NoSuchObject):
        return Missing("noSuchObject")
    if isinstance(value, rfc1905.NoSuchInstance):
        return Missing("noSuchInstance")
    if isinstance(value, rfc1905.EndOfMibView):
        return Missing("endOfMibView")
    if isinstance(value, rfc1902.IpAddress):
        return ".".join(str(b) for b in value.asOctets())
    if isinstance(value, rfc1902.ObjectIdentifier):
        return oid_text(tuple(value))
    if isinstance(value, rfc1902.OctetString | rfc1902.Opaque):
        raw = bytes(value.asOctets())
        text = raw.decode("utf-8", errors="replace").rstrip("\x00")
        if all(c.isprintable() or c in "\r\n\t" for c in text):
            return text
        return raw.hex(":")  # MAC addresses and other binary strings
    if hasattr(value, "hasValue") and not value.hasValue():
        return Missing("null")
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send and how long to wait; ``auth`` names an LCD entry made by ``SnmpTransport.auth_for``."""

    host: str
    port: int
    timeout_s: float
    retries: int
    auth: Auth


@dataclass(frozen=True, slots=True)
class Auth:
    version: str  # "1", "2c", "3"
    security_name: str
    security_level: str  # noAuthNoPriv / authNoPriv / authPriv
    community: bytes = field(default=b"", repr=False, compare=False)  # v1/v2c only; never shown

    @property
    def level_code(self) -> int:
        return {"noAuthNoPriv": 1, "authNoPriv": 2, "authPriv": 3}[self.security_level]

    @property
    def mp_model(self) -> int:
        return {"1": 0, "2c": 1, "3": 3}[self.version]

    @property
    def security_model(self) -> int:
        return {"1": 1, "2c": 2, "3": 3}[self.version]


class SnmpTransport:
    """Every request of the process: v1/v2c over our BER client, v3 over one pysnmp engine.

    ``pysnmp_for_community`` sends v1/v2c through pysnmp too (slower; kept to compare and as a fallback).
    Sockets belong to the event loop they were opened in; a new loop gets new ones.
    """

    def __init__(self, *, pysnmp_for_community: bool = False) -> None:
        self.pysnmp_for_community = pysnmp_for_community
        self._community_client: CommunityClient | None = None
        self._engine: SnmpEngine | None = None
        self._domains: set[tuple[int, ...]] = set()
        self._auth: dict[str, Auth] = {}
        self._usm_keys: dict[str, str] = {}
        self._communities: set[str] = set()
        self._admin_string: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _check_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self.close()
            self._loop = loop

    def _community(self) -> CommunityClient:
        self._check_loop()
        if self._community_client is None:
            self._community_client = CommunityClient()
        return self._community_client

    def _ensure(self) -> SnmpEngine:
        self._check_loop()
        if self._engine is None:
            self._engine = SnmpEngine()
            (self._admin_string,) = self._engine.get_mib_builder().import_symbols(
                "SNMP-FRAMEWORK-MIB", "SnmpAdminString")
        return self._engine

    def _domain(self, host: str) -> tuple[int, ...]:
        engine = self._ensure()
        v6 = ":" in host
        domain: tuple[int, ...] = tuple(udp6.DOMAIN_NAME if v6 else udp.DOMAIN_NAME)
        if domain not in self._domains:
            transport = udp6.Udp6AsyncioTransport() if v6 else udp.UdpAsyncioTransport()
            lcd.add_transport(engine, domain, transport.open_client_mode())
            engine.transport_dispatcher.set_timer_resolution(_TICK_S)
            self._domains.add(domain)
        return domain

    def auth_for(self, cred: SnmpCredential) -> Auth:
        """The LCD entry for a credential, made once: bounded by the number of credentials, not devices.

        Call inside the event loop that will send the requests.
        """
        if cred.version in ("1", "2c"):
            assert cred.community is not None
            secret = cred.community.get_secret_value()
            # named by a digest so the community itself never shows in a name or log
            name = "c" + hashlib.sha256(secret.encode()).hexdigest()[:20]
            return Auth(cred.version, name, "noAuthNoPriv", secret.encode())
        engine = self._ensure()
        user = cred.user or ""
        auth_key = cred.auth_key.get_secret_value() if cred.auth_key else None
        priv_key = cred.priv_key.get_secret_value() if cred.priv_key else None
        fingerprint = hashlib.sha256(
            f"{cred.auth_protocol}\0{auth_key}\0{cred.priv_protocol}\0{priv_key}".encode()).hexdigest()
        if self._usm_keys.get(user) != fingerprint:
            if user in self._usm_keys:
                # two credentials with one user name but different keys: the last one used wins
                lcd.delete_v3_user(engine, user)
            lcd.add_v3_user(
                engine, user,
                _AUTH[cred.auth_protocol] if cred.auth_protocol else lcd.USM_AUTH_NONE, auth_key,
                _PRIV[cred.priv_protocol] if cred.priv_protocol else lcd.USM_PRIV_NONE, priv_key)
            self._usm_keys[user] = fingerprint
            self._auth["u:" + user] = Auth("3", user, cred.security_level)
        return self._auth["u:" + user]

    def _fast(self, target: Target) -> bool:
        return target.auth.version != "3" and not self.pysnmp_for_community

    async def _ber(self, target: Target, pdu_type: int, oids: Sequence[Oid], reps: int = 0) -> list[VarBind]:
        host = await _resolve(target.host)
        return await self._community().request(
            host, target.port, 0 if target.auth.version == "1" else 1, target.auth.community, pdu_type, oids,
            timeout_s=target.timeout_s, retries=target.retries, max_repetitions=reps)

    async def get(self, target: Target, oids: Sequence[Oid]) -> list[VarBind]:
        if self._fast(target):
            return await self._ber(target, ber.GET, oids)
        pdu = v2c.GetRequestPDU()
        return await self._request(target, pdu, oids)

    async def get_next(self, target: Target, oids: Sequence[Oid]) -> list[VarBind]:
        if self._fast(target):
            return await self._ber(target, ber.GETNEXT, oids)
        pdu = v2c.GetNextRequestPDU()
        return await self._request(target, pdu, oids)

    async def get_bulk(self, target: Target, oids: Sequence[Oid], max_repetitions: int) -> list[VarBind]:
        """GETBULK without non-repeaters: the answer is row-major, ``len(oids)`` varbinds per repetition."""
        if target.auth.version == "1":
            raise ProtocolFailure("SNMPv1 has no GETBULK")
        if self._fast(target):
            return await self._ber(target, ber.GETBULK, oids, max_repetitions)
        pdu = v2c.GetBulkRequestPDU()
        v2c.apiBulkPDU.set_defaults(pdu)
        v2c.apiBulkPDU.set_non_repeaters(pdu, 0)
        v2c.apiBulkPDU.set_max_repetitions(pdu, max_repetitions)
        return await self._request(target, pdu, oids, defaults_set=True)

    async def _request(self, target: Target, pdu: Any, oids: Sequence[Oid], *,
                       defaults_set: bool = False) -> list[VarBind]:
        engine = self._ensure()
        host = await _resolve(target.host)
        domain = self._domain(host)
        if not defaults_set:
            v2c.apiPDU.set_defaults(pdu)
        v2c.apiPDU.set_varbinds(pdu, [(o, v2c.null) for o in oids])
        auth = target.auth
        if auth.community and auth.security_name not in self._communities:
            lcd.add_v1_system(engine, auth.security_name, auth.community.decode())
            self._communities.add(auth.security_name)
        # the security module looks names up in maps keyed by pyasn1 values: plain str never matches
        admin = self._admin_string
        sec_name, ctx_name = admin(auth.security_name), admin(b"")
        send_pdu, pdu_version = (rfc2576.v2_to_v1(pdu), 0) if auth.mp_model == 0 else (pdu, 1)
        ticks = max(1, round(target.timeout_s / _TICK_S))
        tries = discovery = 0
        loop = asyncio.get_running_loop()
        while True:
            fut: asyncio.Future[tuple[Any, Any]] = loop.create_future()

            def done(_engine: Any, _mp: Any, _sm: Any, _sn: Any, _sl: Any, _ceid: Any, _cn: Any, _pv: Any,
                     rsp: Any, status: Any, _handle: Any, _ctx: Any, fut: asyncio.Future[Any] = fut) -> None:
                if not fut.done():
                    fut.set_result((rsp, status))

            try:
                engine.message_dispatcher.send_pdu(
                    engine, domain, (host, target.port), auth.mp_model, auth.security_model,
                    sec_name, auth.level_code, None, ctx_name, pdu_version, send_pdu, True,
                    ticks, done, None)
            except Exception as exc:  # pysnmp raises StatusInformation and friends while encoding
                raise ProtocolFailure(f"cannot send SNMP request: {_indication(exc)}") from exc
            try:
                # pysnmp's own timer expires the request; this bound only guards against a lost callback
                rsp, status = await asyncio.wait_for(fut, target.timeout_s + 2.0)
            except TimeoutError:
                rsp, status = None, {"errorIndication": errind.requestTimedOut}
            if status:
                indication = status["errorIndication"]
                if isinstance(indication, errind.UnknownEngineID | errind.NotInTimeWindow):
                    discovery += 1
                    if discovery <= _DISCOVERY_RETRIES:
                        continue
                if isinstance(indication, errind.RequestTimedOut):
                    tries += 1
                    if tries <= target.retries:
                        continue
                    raise DeviceTimeout(
                        f"no answer from {target.host}:{target.port} within {target.timeout_s:g} s "
                        f"({target.retries + 1} tries)")
                if isinstance(indication, _AUTH_ERRORS):
                    raise AuthFailure(f"SNMP credentials refused: {indication}")
                raise ProtocolFailure(f"SNMP error: {indication}")
            if auth.mp_model == 0:
                rsp = rfc2576.v1_to_v2(rsp, pdu)
            status_code = int(v2c.apiPDU.get_error_status(rsp))
            if status_code:
                index = int(v2c.apiPDU.get_error_index(rsp, muteErrors=True))
                raise SnmpErrorStatus(status_code, index)
            return [(tuple(o), to_python(v)) for o, v in v2c.apiPDU.get_varbinds(rsp)]

    def close(self) -> None:
        if self._community_client is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._community_client.close()
            self._community_client = None
        if self._engine is not None:
            dispatcher = self._engine.transport_dispatcher
            loop_open = self._loop is not None and not self._loop.is_closed()
            if dispatcher is not None and loop_open:
                dispatcher.close_dispatcher()
            # with its loop closed, the socket was closed with it: nothing left to release
            self._engine = None
            self._domains.clear()
            self._auth.clear()
            self._usm_keys.clear()
            self._communities.clear()


def _indication(exc: Exception) -> str:
    try:
        return str(exc["errorIndication"])  # type: ignore[index]  # pysnmp's StatusInformation is a dict
    except (KeyError, TypeError):
        return type(exc).__name__


async def _resolve(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise ProtocolFailure(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    return str(infos[0][4][0])
