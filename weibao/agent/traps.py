"""SNMP trap receiver (v1, v2c, v3 over UDP): each trap becomes an Event(kind=TRAP) of the sending device.

The device is found by the packet's source address (then, for v1, by the agent address inside the
trap). A trap from an address that is no device of the inventory is counted (``traps_unknown_source``)
but not kept: the collector refuses events of devices it does not know, and one such event would make it
refuse a whole batch. A packet that cannot be read at all is counted (``traps_malformed``, see
``trapguard``). Both are logged at most once a minute per source, without a traceback: the port is
unauthenticated UDP, and what strangers send must not fill the disk. Where it listens (``--traps
HOST:PORT``; every interface by default, as devices send from every network) is logged at start.

Communities and v3 users come from the inventory's SNMP credentials. An SNMPv3 *trap* is secured with
the sender's engine ID: a device whose ``snmp.engine_id`` the inventory gives has its user registered
for that engine at start, so its first trap is received. Otherwise the receiver cannot know it in
advance: the first v3 trap from an engine not seen before fails authentication, is counted
(``traps_v3_engine_learned``, with a warning that names the engine ID to put in the inventory) and the
user is then registered for that engine, so later traps (and v3 informs, which the sender repeats) are
received. The agent keeps learned engine IDs in its spool, so a restart does not lose a first trap again.
The community string (snmpTrapCommunity of a translated v1 trap) never leaves the receiver.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pyasn1.codec.ber import decoder  # type: ignore[import-untyped]  # pyasn1 ships no type information
from pyasn1.type import univ  # type: ignore[import-untyped]
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1902
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

from weibao.agent.inventory import Device, SnmpCredential
from weibao.agent.trapguard import PacketGuard, guarded_transport, normalise
from weibao.core.model import Event, EventKind, utcnow
from weibao.core.ratelog import Throttle
from weibao.core.text import printable

log = logging.getLogger(__name__)

SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"
SNMP_TRAP_COMMUNITY = "1.3.6.1.6.3.18.1.4.0"  # a secret: never kept
IF_INDEX = "1.3.6.1.2.1.2.2.1.1."
IF_DESCR = "1.3.6.1.2.1.2.2.1.2."
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1."
UPS_ALARM_DESCR = "1.3.6.1.2.1.33.1.6.2.1.2."
UPS_WELL_KNOWN_ALARMS = "1.3.6.1.2.1.33.1.6.3."

TRAP_NAMES: dict[str, str] = {
    "1.3.6.1.6.3.1.1.5.1": "coldStart",
    "1.3.6.1.6.3.1.1.5.2": "warmStart",
    "1.3.6.1.6.3.1.1.5.3": "linkDown",
    "1.3.6.1.6.3.1.1.5.4": "linkUp",
    "1.3.6.1.6.3.1.1.5.5": "authenticationFailure",
    "1.3.6.1.2.1.33.2.1": "upsTrapOnBattery",
    "1.3.6.1.2.1.33.2.2": "upsTrapTestCompleted",
    "1.3.6.1.2.1.33.2.3": "upsTrapAlarmEntryAdded",
    "1.3.6.1.2.1.33.2.4": "upsTrapAlarmEntryRemoved",
    # APC PowerNet-MIB: enterprise 1.3.6.1.4.1.318, v1 specific-trap N is 318.0.N in v2 form (RFC 3584)
    "1.3.6.1.4.1.318.0.1": "apcCommunicationLost",
    "1.3.6.1.4.1.318.0.2": "apcUpsOverload",
    "1.3.6.1.4.1.318.0.3": "apcUpsDiagnosticsFailed",
    "1.3.6.1.4.1.318.0.4": "apcUpsDischarged",
    "1.3.6.1.4.1.318.0.5": "apcUpsOnBattery",
    "1.3.6.1.4.1.318.0.7": "apcLowBattery",
    "1.3.6.1.4.1.318.0.8": "apcCommunicationEstablished",
    "1.3.6.1.4.1.318.0.9": "apcPowerRestored",
}

UPS_ALARMS: dict[int, str] = {
    1: "upsAlarmBatteryBad", 2: "upsAlarmOnBattery", 3: "upsAlarmLowBattery", 4: "upsAlarmDepletedBattery",
    5: "upsAlarmTempBad", 6: "upsAlarmInputBad", 7: "upsAlarmOutputBad", 8: "upsAlarmOutputOverload",
    9: "upsAlarmOnBypass", 10: "upsAlarmBypassBad", 11: "upsAlarmOutputOffAsRequested",
    12: "upsAlarmUpsOffAsRequested", 13: "upsAlarmChargerFailed", 14: "upsAlarmUpsOutputOff",
    15: "upsAlarmUpsSystemOff", 16: "upsAlarmFanFailure", 17: "upsAlarmFuseFailure",
    18: "upsAlarmGeneralFault", 19: "upsAlarmDiagnosticTestFailed", 20: "upsAlarmCommunicationsLost",
    21: "upsAlarmAwaitingPower", 22: "upsAlarmShutdownPending", 23: "upsAlarmShutdownImminent",
    24: "upsAlarmTestInProgress",
}

_AUTH = {"SHA": config.USM_AUTH_HMAC96_SHA, "SHA-256": config.USM_AUTH_HMAC192_SHA256,
         "SHA-512": config.USM_AUTH_HMAC384_SHA512}
# net-snmp's "AES-256" is the Blumenthal key extension
_PRIV = {"AES-128": config.USM_PRIV_CFB128_AES, "AES-256": config.USM_PRIV_CFB256_AES_BLUMENTHAL}


def _render(value: Any) -> Any:
    """A varbind value as JSON: numbers stay numbers, octets become text (hex when not printable)."""
    if type(value).__name__ == "IpAddress":
        return ".".join(str(b) for b in bytes(value.asOctets()))
    if isinstance(value, univ.Integer):
        return int(value)
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    if isinstance(value, univ.OctetString):
        raw = bytes(value.asOctets())
        try:
            text = raw.decode("utf-8")
            if text.isprintable():
                return text
        except UnicodeDecodeError:
            pass
        return "0x" + raw.hex()
    return value.prettyPrint() if hasattr(value, "prettyPrint") else str(value)


def trap_data(varbinds: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """What a trap says, as the event's data: name, OID, varbinds and the interface or alarm it is about."""
    vb: dict[str, Any] = {}
    for oid, value in varbinds:
        if oid == SNMP_TRAP_COMMUNITY:
            continue
        vb[oid] = _render(value)
    trap_oid = str(vb.get(SNMP_TRAP_OID, ""))
    data: dict[str, Any] = {"trap": TRAP_NAMES.get(trap_oid, trap_oid or "unknown"), "oid": trap_oid,
                            "varbinds": vb}
    for oid, value in vb.items():
        if oid.startswith(IF_INDEX):
            data["ifIndex"] = value
        elif oid.startswith(IF_NAME):
            data["ifName"] = value
        elif oid.startswith(IF_DESCR):
            data["ifDescr"] = value
        elif oid.startswith(UPS_ALARM_DESCR) and isinstance(value, str):
            if value.startswith(UPS_WELL_KNOWN_ALARMS):
                tail = value[len(UPS_WELL_KNOWN_ALARMS):]
                data["alarm"] = UPS_ALARMS.get(int(tail), value) if tail.isdigit() else value
            else:
                data["alarm"] = value
    if "ifIndex" not in data:
        # linkUp/linkDown name the interface by the index suffix of ifAdminStatus/ifOperStatus too
        for oid in vb:
            if oid.startswith(("1.3.6.1.2.1.2.2.1.7.", "1.3.6.1.2.1.2.2.1.8.")):
                data["ifIndex"] = int(oid.rsplit(".", 1)[1])
                break
    if "ifName" not in data and "ifDescr" in data:
        data["ifName"] = data["ifDescr"]
    return data


@dataclass(slots=True)
class TrapCounters:
    received: int = 0
    unknown_source: int = 0   # readable, but from an address that is no device of the inventory
    malformed: int = 0        # not readable as SNMP at all
    v3_engine_learned: int = 0
    errors: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"traps_received": self.received, "traps_unknown_source": self.unknown_source,
                "traps_malformed": self.malformed, "traps_v3_engine_learned": self.v3_engine_learned,
                "traps_errors": self.errors}

    def count_malformed(self) -> None:
        self.malformed += 1


def _address_map(devices: Iterable[Device]) -> dict[str, str]:
    out: dict[str, str] = {}
    for d in devices:
        try:
            out[str(ipaddress.ip_address(d.address))] = d.name
        except ValueError:
            continue  # host names are not resolved here: a trap source is always an address
    return out


class TrapReceiver:
    """Listens on one UDP address; ``sink`` is called with each trap's Event (in the event loop)."""

    def __init__(self, devices: Iterable[Device], sink: Callable[[Event], None], *,
                 host: str = "0.0.0.0", port: int = 162,  # noqa: S104 - traps come from every network
                 learned: Iterable[tuple[bytes, str]] = (),
                 on_learn: Callable[[bytes, str], None] | None = None) -> None:
        """``learned``: (engine ID, user) pairs learned before (kept by the caller across restarts through
        ``on_learn``), so a restart does not lose the first trap of every engine again."""
        self.host = host
        self.port = port
        self.counters = TrapCounters()
        self._sink = sink
        self._engine: engine.SnmpEngine | None = None
        self._receiver: ntfrcv.NotificationReceiver | None = None
        self._sock: socket.socket | None = None
        self._v3: dict[str, SnmpCredential] = {}
        self._learned: set[tuple[bytes, str]] = set(learned)
        self._on_learn = on_learn
        self._devices = list(devices)
        self._by_address = _address_map(self._devices)
        # what strangers send is logged per source at most once a minute (the counters count it all)
        self._strangers = Throttle(log, logging.WARNING)
        self._traps_log = Throttle(log, logging.INFO)

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and start receiving (inside the running event loop). Raises OSError if the port is taken."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        eng = engine.SnmpEngine()
        transport = guarded_transport(family, PacketGuard(self._strangers, self.counters.count_malformed))
        domain = udp6.DOMAIN_NAME if family == socket.AF_INET6 else udp.DOMAIN_NAME
        config.add_transport(eng, domain, transport.open_server_mode(sock=sock))
        self._engine = eng
        self._configure_credentials(self._devices)
        eng.observer.register_observer(self._on_sm_failure, "rfc3412.prepareDataElements:sm-failure")
        self._receiver = ntfrcv.NotificationReceiver(eng, self._on_trap)
        log.info("receiving SNMP traps on %s:%d", self.host, self.port)

    def snapshot(self) -> dict[str, int]:
        """The counters, ``traps_malformed`` including what pysnmp itself dropped as unparsable
        (snmpInASNParseErrs, snmpInBadVersions of its engine)."""
        out = self.counters.as_dict()
        if self._engine is not None:
            builder = self._engine.get_mib_builder()
            for name in ("snmpInASNParseErrs", "snmpInBadVersions"):
                (counter,) = builder.import_symbols("__SNMPv2-MIB", name)
                out["traps_malformed"] += int(counter.syntax)
        return out

    def close(self) -> None:
        if self._receiver is not None and self._engine is not None:
            self._receiver.close(self._engine)
        if self._engine is not None:
            self._engine.close_dispatcher()
        self._engine = None
        self._receiver = None
        self._sock = None

    def set_devices(self, devices: Iterable[Device]) -> None:
        """After an inventory reload: new addresses, communities and users."""
        self._devices = list(devices)
        self._by_address = _address_map(self._devices)
        if self._engine is not None:
            self._configure_credentials(self._devices)

    def _configure_credentials(self, devices: Iterable[Device]) -> None:
        assert self._engine is not None
        communities: dict[str, str] = {}
        for d in devices:
            if d.snmp is None:
                continue
            cred = d.snmp.credential
            if cred.version in ("1", "2c") and cred.community is not None:
                communities[cred.community.get_secret_value()] = d.snmp.credential_name
            elif cred.version == "3" and cred.user:
                self._v3[cred.user] = cred
        for i, community in enumerate(sorted(communities)):
            config.add_v1_system(self._engine, f"trap-community-{i}", community)
        for cred in self._v3.values():
            self._add_user(cred, None)  # the local engine: v3 informs
        for d in devices:
            if d.snmp is not None and d.snmp.engine_id and d.snmp.credential.version == "3" \
                    and d.snmp.credential.user:
                self._add_user(d.snmp.credential, bytes.fromhex(d.snmp.engine_id))
        for engine_id, user in self._learned:
            if user in self._v3:
                self._add_user(self._v3[user], engine_id)

    def _add_user(self, cred: SnmpCredential, engine_id: bytes | None) -> None:
        assert self._engine is not None and cred.user is not None
        kwargs: dict[str, Any] = {}
        if cred.auth_protocol and cred.auth_key is not None:
            kwargs["authProtocol"] = _AUTH[cred.auth_protocol]
            kwargs["authKey"] = cred.auth_key.get_secret_value()
        if cred.priv_protocol and cred.priv_key is not None:
            kwargs["privProtocol"] = _PRIV[cred.priv_protocol]
            kwargs["privKey"] = cred.priv_key.get_secret_value()
        if engine_id is not None:
            kwargs["securityEngineId"] = rfc1902.OctetString(engine_id)
        config.add_v3_user(self._engine, cred.user, **kwargs)

    # --- callbacks (pysnmp) ------------------------------------------------------------------------

    def _on_sm_failure(self, snmp_engine: Any, execpoint: str, variables: dict[str, Any], ctx: Any) -> None:
        """A v3 message failed security: learn the sender's engine ID if the user is one of ours."""
        try:
            if int(variables.get("securityModel", 0)) != 3:
                return
            params, _ = decoder.decode(bytes(variables["securityParameters"]),
                                       asn1Spec=UsmSecurityParameters())
            engine_id = bytes(params.getComponentByPosition(0))
            user = bytes(params.getComponentByPosition(3)).decode("utf-8", "replace")
            source = normalise(str(variables["transportAddress"][0]))
        except Exception:  # a malformed packet from the network is not our failure
            log.debug("undecodable SNMPv3 security parameters", exc_info=True)
            return
        if not engine_id or (engine_id, user) in self._learned or user not in self._v3:
            return
        if source not in self._by_address:
            return
        self._learned.add((engine_id, user))
        self._add_user(self._v3[user], engine_id)
        self.counters.v3_engine_learned += 1
        if self._on_learn is not None:
            try:
                self._on_learn(engine_id, user)
            except Exception:  # keeping it is a courtesy: the engine is learned for this run anyway
                log.warning("could not keep the learned SNMPv3 engine ID", exc_info=True)
        log.warning("SNMPv3 trap from %s (engine %s, user %s) could not be read before its engine ID was "
                    "known; later traps from it will be (set snmp.engine_id: \"0x%s\" for that device in the "
                    "inventory to receive the first one too)", source, engine_id.hex(), user, engine_id.hex())

    def _on_trap(self, snmp_engine: Any, state_reference: Any, context_engine_id: Any, context_name: Any,
                 var_binds: Any, ctx: Any) -> None:
        _, address = snmp_engine.message_dispatcher.get_transport_info(state_reference)
        source = normalise(str(address[0]))
        try:
            data = trap_data([(str(oid), value) for oid, value in var_binds])
        except Exception as exc:  # decoded by pysnmp, yet not a trap we can read: the sender's doing
            self.counters.malformed += 1
            self._strangers(source, "dropped an unreadable trap from %s: %s", source, type(exc).__name__)
            return
        device = self._by_address.get(source)
        if device is None:
            agent_addr = data["varbinds"].get(SNMP_TRAP_ADDRESS)
            if isinstance(agent_addr, str):
                device = self._by_address.get(normalise(agent_addr))
        if device is None:
            self.counters.unknown_source += 1
            self._strangers(source, "trap %s from %s, which is no device of the inventory: not kept",
                            printable(data["trap"]), source)
            return
        data["source"] = source
        self.counters.received += 1
        self._traps_log(device, "trap %s from %s", printable(data["trap"]), device)
        try:
            self._sink(Event(device=device, kind=EventKind.TRAP, ts=utcnow(), data=data))
        except Exception:
            self.counters.errors += 1
            log.exception("could not store trap %s from %s", data["trap"], device)
