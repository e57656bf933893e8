"""Benchmark: weibao's SNMP poller against Debian's prometheus-snmp-exporter on N loopback devices.

One snmpd bound to ``udp:PORT`` answers on every 127.x.y.z, so N addresses are N devices. Both sides
read the system group and the IF-MIB columns weibao uses (ifTable + ifXTable) from all N, with
bounded concurrency. Reported per side: wall time, devices/s, CPU seconds (weibao: this process via
getrusage; exporter: its process via /proc/PID/stat), and the ratio. Also measured: the first-contact
cost of N new targets with pysnmp's hlapi (``get_cmd`` with one UdpTransportTarget per device)
against weibao's transport (one engine, no per-target LCD rows), one GET of sysUpTime each.

    .venv/bin/python bench/snmp_poll.py [--devices 1000] [--rounds 3] [--skip-hlapi] [--skip-pysnmp]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from agent.inventory.model import Category, Device, Kind, SnmpCredential, SnmpSettings  # noqa: E402
from agent.pollers.snmp import SnmpPoller  # noqa: E402
from agent.pollers.snmp.engine import SnmpTransport, Target, parse_oid  # noqa: E402
from agent.state import StateStore  # noqa: E402
from tests.peers.snmpd import COMMUNITY, running_snmpd  # noqa: E402

EXPORTER = "/usr/bin/prometheus-snmp-exporter"
SYSTEM_OIDS = ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.4.0",
               "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.6.0"]
# the IF-MIB columns of agent/profiles/if_mib.yaml: (oid, name, prometheus type)
IF_COLUMNS = [
    ("1.3.6.1.2.1.2.2.1.2", "ifDescr", "DisplayString"), ("1.3.6.1.2.1.2.2.1.3", "ifType", "gauge"),
    ("1.3.6.1.2.1.2.2.1.5", "ifSpeed", "gauge"), ("1.3.6.1.2.1.2.2.1.7", "ifAdminStatus", "gauge"),
    ("1.3.6.1.2.1.2.2.1.8", "ifOperStatus", "gauge"), ("1.3.6.1.2.1.2.2.1.10", "ifInOctets", "counter"),
    ("1.3.6.1.2.1.2.2.1.14", "ifInErrors", "counter"), ("1.3.6.1.2.1.2.2.1.16", "ifOutOctets", "counter"),
    ("1.3.6.1.2.1.2.2.1.20", "ifOutErrors", "counter"), ("1.3.6.1.2.1.31.1.1.1.1", "ifName", "DisplayString"),
    ("1.3.6.1.2.1.31.1.1.1.6", "ifHCInOctets", "counter"), ("1.3.6.1.2.1.31.1.1.1.10", "ifHCOutOctets", "counter"),
    ("1.3.6.1.2.1.31.1.1.1.15", "ifHighSpeed", "gauge"), ("1.3.6.1.2.1.31.1.1.1.18", "ifAlias", "DisplayString"),
]
SCRAPE_CONCURRENCY = 50


def addresses(n: int) -> list[str]:
    # 127.1.x.y, y in 1..250: distinct loopback addresses, all answered by the one snmpd
    return [f"127.1.{i // 250}.{1 + i % 250}" for i in range(n)]


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def exporter_config(path: Path) -> None:
    """snmp.yml in the 0.21 format (one module holding walk/get/metrics/auth), numeric OIDs only."""
    lines = ["if_mib:", "  walk:"]
    lines += [f"  - {oid}" for oid, _, _ in IF_COLUMNS]
    lines += ["  get:"] + [f"  - {oid}" for oid in SYSTEM_OIDS]
    lines += ["  metrics:",
              "  - name: sysUpTime", "    oid: 1.3.6.1.2.1.1.3", "    type: gauge", "    help: sysUpTime",
              "  - name: sysName", "    oid: 1.3.6.1.2.1.1.5", "    type: DisplayString", "    help: sysName",
              "  - name: sysDescr", "    oid: 1.3.6.1.2.1.1.1", "    type: DisplayString", "    help: sysDescr"]
    for oid, name, typ in IF_COLUMNS:
        lines += [f"  - name: {name}", f"    oid: {oid}", f"    type: {typ}", f"    help: {name}",
                  "    indexes:", "    - labelname: ifIndex", "      type: gauge",
                  "    lookups:", "    - labels: [ifIndex]", "      labelname: ifName",
                  "      oid: 1.3.6.1.2.1.31.1.1.1.1", "      type: DisplayString"]
    lines += ["  version: 2", "  max_repetitions: 25", "  retries: 1", "  timeout: 2s",
              "  auth:", f"    community: {COMMUNITY}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def devices(addrs: list[str], port: int) -> list[Device]:
    cred = SnmpCredential(type="snmp", version="2c", community=COMMUNITY)
    return [Device(name=f"dev{i}", address=a, kind=Kind.SWITCH, category=Category.BUSINESS,
                   snmp=SnmpSettings(credential_name="bench", credential=cred, port=port, timeout_s=2.0,
                                     retries=1, profiles=["if_mib"]))
            for i, a in enumerate(addrs)]


def measure(label: str, n: int, fn: Callable[[], Coroutine[Any, Any, int]], cpu: Callable[[], float]) -> dict[str, Any]:
    c0, t0 = cpu(), time.monotonic()
    ok = asyncio.run(fn())
    wall, used = time.monotonic() - t0, cpu() - c0
    return {"label": label, "devices": n, "ok": ok, "wall": wall, "rate": n / wall, "cpu": used}


def weibao_rounds(devs: list[Device], rounds: int, *, pysnmp: bool = False) -> list[dict[str, Any]]:
    state = StateStore()
    poller = SnmpPoller(state, max_in_flight=32, pysnmp_for_community=pysnmp)
    name = "weibao, v2c via pysnmp" if pysnmp else "weibao"
    out = []

    async def one_round() -> int:
        results = await poller.poll_many(devs)
        return sum(1 for r in results if r.ok and any(s.metric == "if.oper_up" for s in r.samples))

    async def whole() -> list[dict[str, Any]]:
        rows = []
        for i in range(rounds):
            c0, t0 = cpu_self(), time.monotonic()
            ok = await one_round()
            wall, used = time.monotonic() - t0, cpu_self() - c0
            label = f"{name} round 1 (first contact)" if i == 0 else f"{name} round {i + 1}"
            rows.append({"label": label, "devices": len(devs), "ok": ok, "wall": wall,
                         "rate": len(devs) / wall, "cpu": used})
        poller.close()
        return rows

    out = asyncio.run(whole())
    return out


def exporter_rounds(addrs: list[str], port: int, rounds: int) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="weibao-bench-"))
    conf = tmp / "snmp.yml"
    exporter_config(conf)
    web = free_tcp_port()
    proc = subprocess.Popen([EXPORTER, f"--config.file={conf}", f"--web.listen-address=127.0.0.1:{web}",
                             "--log.level=error"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{web}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(base + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise SystemExit(f"exporter did not start: {err[-1000:]}")
            time.sleep(0.1)

        async def scrape_all() -> int:
            sem = asyncio.Semaphore(SCRAPE_CONCURRENCY)
            limits = httpx.Limits(max_connections=SCRAPE_CONCURRENCY, max_keepalive_connections=SCRAPE_CONCURRENCY)
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
                async def one(addr: str) -> bool:
                    async with sem:
                        r = await client.get("/snmp", params={"module": "if_mib", "target": f"{addr}:{port}"})
                        return r.status_code == 200 and "ifHCInOctets{" in r.text
                return sum(await asyncio.gather(*(one(a) for a in addrs)))

        return [measure(f"exporter round {i + 1}", len(addrs), scrape_all, lambda: cpu_of(proc.pid))
                for i in range(rounds)]
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


def first_contact(addrs: list[str], port: int, skip_hlapi: bool) -> list[dict[str, Any]]:
    oid = "1.3.6.1.2.1.1.3.0"
    rows = []

    async def ours() -> int:
        t = SnmpTransport()
        auth = t.auth_for(SnmpCredential(type="snmp", version="2c", community=COMMUNITY))
        sem = asyncio.Semaphore(32)

        async def one(a: str) -> bool:
            async with sem:
                try:
                    await t.get(Target(a, port, 2.0, 1, auth), [parse_oid(oid)])
                    return True
                except Exception:
                    return False
        ok = sum(await asyncio.gather(*(one(a) for a in addrs)))
        t.close()
        return ok

    rows.append(measure("first contact, weibao transport (1 GET each)", len(addrs), ours, cpu_self))
    if skip_hlapi:
        return rows
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        get_cmd,
    )

    async def hlapi() -> int:
        engine = SnmpEngine()
        sem = asyncio.Semaphore(32)

        async def one(a: str) -> bool:
            async with sem:
                target = await UdpTransportTarget.create((a, port), timeout=2, retries=1)
                err, status, _i, _b = await get_cmd(engine, CommunityData(COMMUNITY), target, ContextData(),
                                                    ObjectType(ObjectIdentity(oid)))
                return not err and not status
        ok = sum(await asyncio.gather(*(one(a) for a in addrs)))
        engine.close_dispatcher()
        return ok

    rows.append(measure("first contact, pysnmp hlapi get_cmd (1 GET each)", len(addrs), hlapi, cpu_self))
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"| {'run':<50} | devices |    ok | wall s | devices/s | CPU s |",
             "|" + "-" * 52 + "|---------|-------|--------|-----------|-------|"]
    for r in rows:
        lines.append(f"| {r['label']:<50} | {r['devices']:>7} | {r['ok']:>5} | {r['wall']:>6.2f} | "
                     f"{r['rate']:>9.0f} | {r['cpu']:>5.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-hlapi", action="store_true", help="skip the (slow) pysnmp hlapi first-contact run")
    ap.add_argument("--skip-pysnmp", action="store_true", help="skip weibao's rounds with v2c through pysnmp")
    args = ap.parse_args()
    if not 1 <= args.devices <= 60000:
        raise SystemExit("--devices must be between 1 and 60000")
    if not Path(EXPORTER).exists():
        raise SystemExit(f"{EXPORTER} not found (apt-get install prometheus-snmp-exporter)")
    addrs = addresses(args.devices)
    with running_snmpd(bind_all=True) as snmpd:
        print(f"snmpd on udp:{snmpd.port} (all loopback addresses); {args.devices} devices, 2 cores")
        # the fast runs first: the pysnmp runs leave a large heap behind that slows what follows
        ours = weibao_rounds(devices(addrs, snmpd.port), args.rounds)
        gc.collect()
        theirs = exporter_rounds(addrs, snmpd.port, args.rounds)
        gc.collect()
        contact = first_contact(addrs, snmpd.port, args.skip_hlapi)
        gc.collect()
        slow = [] if args.skip_pysnmp else weibao_rounds(devices(addrs, snmpd.port), args.rounds, pysnmp=True)
    print(table(ours + theirs + contact + slow))
    w = min(ours[1:] or ours, key=lambda r: r["wall"])
    e = min(theirs[1:] or theirs, key=lambda r: r["wall"])
    print(f"\nsteady state (best round after the first): weibao {w['rate']:.0f} devices/s, {w['cpu']:.2f} CPU s; "
          f"exporter {e['rate']:.0f} devices/s, {e['cpu']:.2f} CPU s")
    print(f"ratio weibao/exporter: devices/s {w['rate'] / e['rate']:.2f}, CPU s {w['cpu'] / max(e['cpu'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
