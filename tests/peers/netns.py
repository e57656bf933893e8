"""A throwaway network namespace joined to the host by a veth pair, for tests that need real hosts.

    with netns() as ns:            # needs root and iproute2
        ns.host_addr               # 198.51.100.x+1, host side of the veth
        ns.ns_addr                 # x+2, inside the namespace: answers ping
        ns.silent_addr             # x+3, routed into the namespace where nobody holds it: no answer
        ns.set_loss(30)            # nftables `numgen random mod 100 < 30 drop` on the namespace's output

Addresses come from a /29 of 198.51.100.0/24 that no host interface uses yet (or the one asked for).
The namespace has routes to its /29 only, so nothing run inside it can reach any other network.
Everything created (namespace, veth pair, /etc/netns/NAME) is removed on exit.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

POOL = ipaddress.IPv4Network("198.51.100.0/24")
OTHER_POOL = ipaddress.IPv4Network("203.0.113.0/24")
_LOSS_TABLE = "weibao_loss"
_SILENT_TABLE = "weibao_silent"
_ETC_NETNS = Path("/etc/netns")


def available() -> str | None:
    """None when namespaces can be made here, else the reason they cannot (for pytest.skip)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _run(argv: Sequence[str], *, input_text: str | None = None) -> str:
    done = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = json.loads(_run(["ip", "-j", "-4", "addr", "show"]))
    nets = []
    for link in out:
        for a in link.get("addr_info", []):
            nets.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    for route in json.loads(_run(["ip", "-j", "-4", "route", "show"])):
        dst = route.get("dst", "")
        if dst and dst != "default":
            nets.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    return nets


def _free_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    candidates = list(POOL.subnets(new_prefix=29))
    # start at a random /29 so concurrent runs rarely race for the same one
    start = secrets.randbelow(len(candidates))
    for net in candidates[start:] + candidates[:start]:
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"no free /29 left in {POOL}")


@dataclass(frozen=True)
class Netns:
    name: str
    host_if: str
    ns_if: str
    subnet: ipaddress.IPv4Network
    host_addr: str
    ns_addr: str
    silent_addr: str

    def cmd(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace (with its /etc/netns/NAME files, e.g. resolv.conf)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, input_text: str | None = None) -> str:
        return _run(self.cmd(*argv), input_text=input_text)

    def sysctl(self, key: str, value: str) -> None:
        """Set a per-namespace sysctl (e.g. net.ipv4.ping_group_range); gone with the namespace."""
        self.run("sysctl", "-q", "-w", f"{key}={value}")

    def set_loss(self, pct: int) -> None:
        """Drop about ``pct`` % of the packets the namespace sends to the host side, at random."""
        if not 0 <= pct <= 100:
            raise ValueError("pct must be within 0..100")
        self.clear_loss()
        script = (
            f"table inet {_LOSS_TABLE} {{\n"
            "  chain out {\n"
            "    type filter hook output priority 0; policy accept;\n"
            f"    ip daddr {self.host_addr} numgen random mod 100 < {pct} counter drop\n"
            "  }\n"
            "}\n"
        )
        self.run("nft", "-f", "-", input_text=script)

    def clear_loss(self) -> None:
        tables = self.run("nft", "list", "tables")
        if f"inet {_LOSS_TABLE}" in tables:
            self.run("nft", "delete", "table", "inet", _LOSS_TABLE)

    def dropped(self) -> int:
        """Packets the loss rule has dropped so far (read from the nftables counter)."""
        return self._counted(_LOSS_TABLE)

    def silenced(self) -> int:
        """Packets to ``silent_addr`` that the namespace has swallowed so far."""
        return self._counted(_SILENT_TABLE)

    def _counted(self, table: str) -> int:
        out = json.loads(self.run("nft", "-j", "list", "table", "inet", table))
        total = 0
        for item in out.get("nftables", []):
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    total += int(expr["counter"]["packets"])
        return total

    def write_etc(self, filename: str, text: str) -> None:
        """A file that ``ip netns exec`` binds over /etc/FILENAME inside the namespace."""
        etc = _ETC_NETNS / self.name
        if not _ETC_NETNS.exists():
            _ETC_NETNS.mkdir()
            _ETC_NETNS.joinpath(f".made-by-{self.name}").touch()
        etc.mkdir(exist_ok=True)
        (etc / filename).write_text(text, encoding="utf-8")


@contextmanager
def netns(subnet: str | None = None, *, loss_pct: int | None = None) -> Iterator[Netns]:
    """Create a namespace + veth pair on a free /29 of 198.51.100.0/24 (or ``subnet``); remove it after."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    net = ipaddress.IPv4Network(subnet) if subnet else _free_subnet()
    if net.num_addresses < 8:
        raise ValueError("subnet must hold at least 8 addresses")
    if not net.subnet_of(POOL) and not net.subnet_of(OTHER_POOL):
        raise ValueError("tests only use 198.51.100.0/24 or 203.0.113.0/24")
    tag = secrets.token_hex(3)
    ns = Netns(name=f"wb-{tag}", host_if=f"wbh{tag}", ns_if=f"wbn{tag}", subnet=net,
               host_addr=str(net[1]), ns_addr=str(net[2]), silent_addr=str(net[3]))
    prefix = net.prefixlen
    created = False
    try:
        _run(["ip", "netns", "add", ns.name])
        created = True
        _run(["ip", "link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if, "netns", ns.name])
        _run(["ip", "addr", "add", f"{ns.host_addr}/{prefix}", "dev", ns.host_if])
        _run(["ip", "link", "set", ns.host_if, "up"])
        _run(["ip", "-n", ns.name, "addr", "add", f"{ns.ns_addr}/{prefix}", "dev", ns.ns_if])
        _run(["ip", "-n", ns.name, "link", "set", ns.ns_if, "up"])
        _run(["ip", "-n", ns.name, "link", "set", "lo", "up"])
        # without this route the host would ARP for the silent address and report it unreachable;
        # with it the probes really travel into the namespace, which drops them without a word
        # (not forwarding, it would otherwise answer "host unreachable")
        _run(["ip", "route", "add", f"{ns.silent_addr}/32", "via", ns.ns_addr, "dev", ns.host_if])
        ns.run("nft", "-f", "-", input_text=(
            f"table inet {_SILENT_TABLE} {{\n"
            "  chain pre {\n"
            "    type filter hook prerouting priority 0; policy accept;\n"
            f"    ip daddr {ns.silent_addr} counter drop\n"
            "  }\n"
            "}\n"))
        if loss_pct is not None:
            ns.set_loss(loss_pct)
        yield ns
    finally:
        if created:
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=30, check=False)
        # deleting the namespace deletes its veth end, and with it ours and our routes; be sure anyway
        subprocess.run(["ip", "link", "del", ns.host_if], capture_output=True, timeout=30, check=False)
        shutil.rmtree(_ETC_NETNS / ns.name, ignore_errors=True)
        marker = _ETC_NETNS / f".made-by-{ns.name}"
        if marker.exists():  # we made /etc/netns: leave the host as it was, unless others use it now
            marker.unlink()
            with contextlib.suppress(OSError):
                _ETC_NETNS.rmdir()
