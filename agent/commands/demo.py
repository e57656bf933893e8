"""``weibao demo``: simulated devices on loopback (snmpsim recordings of real devices), one inspection.

The demo writes a real inventory and a secrets file (mode 0600) next to the report, so what it shows is
exactly what ``weibao inspect`` does for a client site: nothing is special-cased for the demo.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path

import yaml

from agent.errors import ConfigError
from agent.inventory import load_inventory
from agent.model import utcnow
from agent.simlab import DEMO_RECORDINGS, SimLabError, SnmpSim
from agent.state import StateStore

# what each simulated device is, for the inventory (kind, contract category, upstream, asset facts)
_DEVICES: dict[str, dict[str, object]] = {
    "core-sw-1": {"kind": "switch", "category": "backbone",
                  "asset": {"vendor": "Huawei", "model": "S5720", "location": "机房A 01柜",
                            "warranty_end": "2027-06-30"}},
    "access-sw-1": {"kind": "switch", "category": "business", "depends_on": "core-sw-1",
                    "asset": {"vendor": "H3C", "model": "E528", "location": "3楼弱电间"}},
    "linux-srv-1": {"kind": "server", "category": "mis", "depends_on": "access-sw-1",
                    "asset": {"vendor": "Inspur", "model": "NF5280M5", "location": "机房A 05柜"}},
    "ups-1": {"kind": "ups", "category": "business", "depends_on": "core-sw-1",
              "asset": {"vendor": "Eaton", "model": "93E-80kVA", "location": "配电室"}},
}


def demo_inventory(sim: SnmpSim, workdir: Path, *, warranty_soon: str) -> Path:
    """Write the demo site's inventory and secrets file; return the inventory's path."""
    secrets = {f"community_{name.replace('-', '_')}": sim.community_for(name) for name in sim.recordings}
    secrets_path = workdir / "secrets.yaml"
    secrets_path.write_text(yaml.safe_dump(secrets), encoding="utf-8")
    os.chmod(secrets_path, 0o600)
    credentials = {f"snmp-{name}": {"type": "snmp", "version": "2c",
                                    "community": f"${{secret:community_{name.replace('-', '_')}}}"}
                   for name in sim.recordings}
    devices = []
    for name in sim.recordings:
        entry: dict[str, object] = {"name": name, "address": sim.host, **_DEVICES.get(name, {})}
        entry["snmp"] = {"credential": f"snmp-{name}", "port": sim.port}
        devices.append(entry)
    # a router whose SNMP agent does not answer: it pings, so the inspection flags a monitoring problem
    credentials["snmp-branch"] = {"type": "snmp", "version": "2c", "community": "${secret:community_branch}"}
    secrets["community_branch"] = "branch-office"
    secrets_path.write_text(yaml.safe_dump(secrets), encoding="utf-8")
    devices.append({"name": "branch-router-1", "address": "127.0.0.2", "kind": "router", "category": "provincial",
                    "depends_on": "core-sw-1", "snmp": {"credential": "snmp-branch", "port": _closed_udp_port(),
                                                        "timeout_s": 1, "retries": 0},
                    "asset": {"vendor": "Ruijie", "model": "RSR20", "location": "分局机房",
                              "warranty_end": warranty_soon}})
    doc = {"site": "演示单位 数据中心（模拟设备）", "secrets_file": "secrets.yaml", "credentials": credentials,
           "defaults": {"icmp": {"count": 5, "interval_ms": 20}, "snmp": {"timeout_s": 3, "retries": 1}},
           "devices": devices}
    path = workdir / "inventory.yaml"
    path.write_text("# written by `weibao demo`: simulated devices on loopback\n"
                    + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _closed_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.2", 0))
        return int(s.getsockname()[1])


def run(args: argparse.Namespace) -> int:
    from agent.commands.inspect import collect
    from agent.inspection import History, inspect, load_inspection_rules, write_report

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    rules_path = Path(__file__).resolve().parents[2] / "rules" / "inspection.yaml"
    print("starting simulated devices (snmpsim with recordings of real devices) ...", flush=True)
    try:
        with SnmpSim(DEMO_RECORDINGS) as sim:
            soon = utcnow().date() + timedelta(days=45)
            inv_path = demo_inventory(sim, out, warranty_soon=soon.isoformat())
            try:
                inventory = load_inventory(inv_path)
                rules = load_inspection_rules(rules_path)
            except ConfigError as exc:
                print(exc, file=sys.stderr)
                return 1
            print(f"inventory: {inv_path}  ({len(inventory.devices)} devices at {sim.host}:{sim.port})")
            print("polling (ICMP, SNMP; interface rates need two readings 5 s apart) ...", flush=True)
            devices = list(inventory.devices.values())
            state = StateStore.in_dir(data)
            results = asyncio.run(collect(devices, state, data / "configs", settle_s=5.0))
            history = History.load(data)
            now = utcnow()
            inspection = inspect(devices, results, rules, history, now=now)
            path = write_report(inspection, out, lang=args.lang, site=inventory.site)
            history.update(results, metrics=rules.remembered_metrics, now=now)
            history.save()
            state.save()
            s = inspection.summary
            print(f"\n{s.checked} devices checked: {s.healthy} healthy, {s.with_findings} with findings, "
                  f"{s.unreachable} unreachable; {len(inspection.findings)} findings")
            for f in sorted(inspection.findings, key=lambda f: (-f.severity.rank, f.device))[:12]:
                print(f"  [{f.severity.value:8}] {f.device:16} {f.message.get(args.lang)}")
            print(f"\nreport: {path.resolve()}")
            if args.keep:
                print(f"simulated devices stay up at {sim.host}:{sim.port} (communities in {out / 'secrets.yaml'});"
                      " Ctrl-C stops them", flush=True)
                stop = threading.Event()
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                with contextlib.suppress(KeyboardInterrupt):
                    stop.wait()
    except SimLabError as exc:
        print(f"cannot start the simulated devices: {exc}", file=sys.stderr)
        return 1
    return 0
