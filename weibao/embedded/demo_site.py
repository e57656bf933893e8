"""The simulated site of ``weibao demo``: snmpsim devices on loopback, their inventory, and a UPS trap.

Three snmpsim processes serve recordings of real devices, each on an address of its own so that the
trap receiver can tell devices apart by source address: the core site (127.0.0.1), the UPS
(127.0.0.5) and a branch switch with a video recorder behind it (127.0.0.6), which the demo stops to
simulate an outage. Communities are random per run and live only in the secrets file (mode 0600):
the inventory names them by reference, as it would for a client site.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import yaml

from weibao.embedded.simlab import DEMO_RECORDINGS, SnmpSim

UPS = "ups-1"
BRANCH_SWITCH = "dist-sw-2"
BRANCH_BEHIND = "nvr-2"
CORE_HOST, UPS_HOST, BRANCH_HOST, ROUTER_HOST = "127.0.0.1", "127.0.0.5", "127.0.0.6", "127.0.0.2"
BRANCH_RECORDINGS = {BRANCH_SWITCH: "network/switch/cisco-c3560", BRANCH_BEHIND: "os/linux/unknown-002"}
ICMP_EVERY_S, SNMP_EVERY_S = 2, 5

UPS_ON_BATTERY = (1, 3, 6, 1, 2, 1, 33, 2, 1)  # upsTrapOnBattery (RFC 1628)
UPS_SECONDS_ON_BATTERY = (1, 3, 6, 1, 2, 1, 33, 1, 2, 2, 0)
UPS_MINUTES_REMAINING = (1, 3, 6, 1, 2, 1, 33, 1, 2, 3, 0)

# what each simulated device is, for the inventory (kind, contract category, upstream, asset facts)
FACTS: dict[str, dict[str, object]] = {
    "core-sw-1": {"kind": "switch", "category": "backbone",
                  "asset": {"vendor": "Huawei", "model": "S5720", "location": "机房A 01柜",
                            "warranty_end": "2027-06-30"}},
    "access-sw-1": {"kind": "switch", "category": "business", "depends_on": "core-sw-1",
                    "asset": {"vendor": "H3C", "model": "E528", "location": "3楼弱电间"}},
    "linux-srv-1": {"kind": "server", "category": "mis", "depends_on": "access-sw-1",
                    "asset": {"vendor": "Inspur", "model": "NF5280M5", "location": "机房A 05柜"}},
    UPS: {"kind": "ups", "category": "business", "depends_on": "core-sw-1",
          "asset": {"vendor": "Eaton", "model": "93E-80kVA", "location": "配电室"}},
    # SNMP only (no ICMP): its `up` comes from SNMP answering
    BRANCH_SWITCH: {"kind": "switch", "category": "business", "depends_on": "core-sw-1", "icmp": {"enabled": False},
                    "asset": {"vendor": "Cisco", "model": "C3560", "location": "二号楼弱电间"}},
    BRANCH_BEHIND: {"kind": "server", "category": "business", "depends_on": BRANCH_SWITCH,
                    "icmp": {"enabled": False},
                    "asset": {"vendor": "Hikvision", "model": "DS-9632NX", "location": "二号楼监控室"}},
}


@dataclass
class Sims:
    """The running simulators and each device's (random) community."""

    core: SnmpSim
    ups: SnmpSim
    branch: SnmpSim
    communities: dict[str, str]

    def all(self) -> list[SnmpSim]:
        return [self.core, self.ups, self.branch]


def _community() -> str:
    return "c" + secrets.token_hex(8)


def start_sims(stack: contextlib.ExitStack) -> Sims:
    """Start the three simulators; each stops when ``stack`` closes (also on Ctrl-C)."""
    communities: dict[str, str] = {}

    def sim(devices: dict[str, str], host: str) -> SnmpSim:
        by_community = {}
        for name, recording in devices.items():
            communities[name] = _community()
            by_community[communities[name]] = recording
        return stack.enter_context(SnmpSim(by_community, host=host))

    core = sim({n: r for n, r in DEMO_RECORDINGS.items() if n != UPS}, CORE_HOST)
    ups = sim({UPS: DEMO_RECORDINGS[UPS]}, UPS_HOST)
    branch = sim(BRANCH_RECORDINGS, BRANCH_HOST)
    return Sims(core, ups, branch, communities)


def _closed_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def write_site(sims: Sims, workdir: Path, *, warranty_soon: str) -> Path:
    """Write the demo site's inventory and secrets file (0600); return the inventory's path."""
    where = {name: sims.core for name in DEMO_RECORDINGS if name != UPS}
    where.update({UPS: sims.ups, BRANCH_SWITCH: sims.branch, BRANCH_BEHIND: sims.branch})
    secret_values = {f"community_{n.replace('-', '_')}": sims.communities[n] for n in where}
    # a router whose SNMP agent does not answer: it pings, so the inspection flags a monitoring problem
    secret_values["community_branch_router_1"] = _community()
    credentials = {f"snmp-{n}": {"type": "snmp", "version": "2c",
                                 "community": f"${{secret:community_{n.replace('-', '_')}}}"}
                   for n in [*where, "branch-router-1"]}
    devices: list[dict[str, object]] = []
    for name, sim in where.items():
        entry: dict[str, object] = {"name": name, "address": sim.host, **FACTS[name]}
        entry["snmp"] = {"credential": f"snmp-{name}", "port": sim.port,
                         **({"timeout_s": 1, "retries": 1} if sim is sims.branch else {})}
        devices.append(entry)
    devices.append({"name": "branch-router-1", "address": ROUTER_HOST, "kind": "router", "category": "provincial",
                    "depends_on": "core-sw-1",
                    "snmp": {"credential": "snmp-branch-router-1", "port": _closed_udp_port(ROUTER_HOST),
                             "timeout_s": 1, "retries": 0},
                    "asset": {"vendor": "Ruijie", "model": "RSR20", "location": "分局机房",
                              "warranty_end": warranty_soon}})
    secrets_path = workdir / "secrets.yaml"
    fd = os.open(secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(secret_values, fh)
    os.chmod(secrets_path, 0o600)  # an older file keeps its mode through O_TRUNC
    doc = {"site": "演示单位 数据中心（模拟设备）", "secrets_file": "secrets.yaml", "credentials": credentials,
           "defaults": {"icmp": {"count": 5, "interval_ms": 20}, "snmp": {"timeout_s": 3, "retries": 1},
                        # fast, so that the demo shows faults within seconds (a site would poll every 10 s / 60 s)
                        "schedule": {"icmp_s": ICMP_EVERY_S, "snmp_s": SNMP_EVERY_S, "timeout_s": 4}},
           "devices": devices}
    path = workdir / "inventory.yaml"
    path.write_text("# written by `weibao demo`: simulated devices on loopback\n"
                    + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def ups_on_battery_trap(community: str, *, uptime_cs: int = 4_200_000, minutes_left: int = 38) -> bytes:
    """An SNMPv2c upsTrapOnBattery notification as a UPS sends it when the mains fail."""
    from pyasn1.codec.ber import encoder  # type: ignore[import-untyped]  # pyasn1 ships no type information
    from pysnmp.proto import api

    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = p.SNMPv2TrapPDU()
    p.apiTrapPDU.set_defaults(pdu)
    p.apiTrapPDU.set_varbinds(pdu, [
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), p.TimeTicks(uptime_cs)),
        ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), p.ObjectIdentifier(UPS_ON_BATTERY)),
        (UPS_SECONDS_ON_BATTERY, p.Integer(3)),
        (UPS_MINUTES_REMAINING, p.Integer(minutes_left)),
    ])
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, community)
    p.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


def send_trap(packet: bytes, *, source: str, dest: tuple[str, int]) -> None:
    """One UDP datagram from ``source`` (the device's address, by which the receiver knows it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.sendto(packet, dest)
