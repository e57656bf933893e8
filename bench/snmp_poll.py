"""Benchmark: weibao's SNMP poller against Debian's prometheus-snmp-exporter on N loopback devices.

One snmpd bound to ``udp:PORT`` answers on every 127.x.y.z, so N addresses are N devices. Both sides
read the same data from every device: the six system scalars and the 14 IF-MIB columns weibao's
``if_mib`` profile uses, for every interface snmpd has. Both sides are held to the same completeness,
checked per device before any ratio is printed: the six system values, and each of the 14 columns for
every ifIndex that snmpd itself holds it for (read once with snmpwalk). weibao's side: the poll without
an error, the system facts and ``sys.uptime_s``, one interface fact per ifIndex, and every column value
in the rows its walk brought back (its samples are derived: ifInOctets is read only where ifHCInOctets
is missing, so only the rows show whether every column came back). The exporter's side: each of the 14
metrics with each ifIndex label on its page, and the six system metrics. A side that falls short in any
round stops the benchmark with a non-zero exit and what was missing.

The exporter is scraped by curl (``--parallel``, keep-alive, a C client in its own process) with as many
scrapes in flight as weibao polls devices at once, so the client's cost neither slows the exporter
nor hides in its numbers; curl's CPU is shown on its own. The exporter runs with two configs: the
IF-MIB tables walked whole (``walk: [ifTable, ifXTable]``, max_repetitions 25: as the exporter's
stock if_mib module walks them) and the 14 columns walked one by one with max_repetitions fitted to
the interface count (exactly weibao's data, the fewest varbinds). Per side: wall time, devices/s,
CPU ms per device of the poller, of snmpd and of the client (from /proc), and the requests and
varbinds per device that snmpd itself counted (snmpInPkts, snmpInTotalReqVars). Also measured: the
first-contact cost of N new targets with pysnmp's hlapi against weibao's transport (one GET each).

    .venv/bin/python bench/snmp_poll.py [--devices 1000] [--rounds 3] [--skip-hlapi] [--skip-pysnmp]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import (  # noqa: E402
    cpu_seconds,
    free_tcp_port,
    loopback_addresses,
    markdown_table,
    ratio,
    require_complete,
    self_cpu,
    shortfall,
    stop,
)
from tests.peers.snmpd import COMMUNITY, Snmpd, running_snmpd  # noqa: E402
from weibao.agent.inventory.model import Device, SnmpCredential, SnmpSettings  # noqa: E402
from weibao.agent.pollers.snmp import SnmpPoller  # noqa: E402
from weibao.agent.pollers.snmp.profiles import Profile, load_profiles  # noqa: E402
from weibao.agent.pollers.snmp.transport import Missing, SnmpTransport, Target, oid_text, parse_oid  # noqa: E402
from weibao.agent.pollers.snmp.walk import Rows  # noqa: E402
from weibao.agent.state import StateStore  # noqa: E402
from weibao.core.inventory import Category, Kind  # noqa: E402
from weibao.core.model import PollResult  # noqa: E402

EXPORTER = "/usr/bin/prometheus-snmp-exporter"
SYSTEM_OIDS = ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.4.0",
               "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.6.0"]
SYSTEM_NAMES = ["sysDescr", "sysObjectID", "sysUpTime", "sysContact", "sysName", "sysLocation"]
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
IF_TABLES = ["1.3.6.1.2.1.2.2", "1.3.6.1.2.1.31.1.1"]  # ifTable, ifXTable
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
SNMP_IN_PKTS, SNMP_IN_REQ_VARS = "1.3.6.1.2.1.11.1.0", "1.3.6.1.2.1.11.13.0"
IN_FLIGHT = 32  # weibao's polls at once = the exporter's scrapes at once
EXPORTER_MODES = ("tables", "columns")

# column name -> the ifIndex values snmpd holds it for: what every device's answer must hold, on both sides
Expected = dict[str, frozenset[str]]


@dataclass(frozen=True)
class Row:
    label: str
    devices: int
    complete: int  # devices whose full data came back
    wall_s: float
    cpu_s: float  # the poller: weibao's process or the exporter
    snmpd_cpu_s: float | None = None
    client_cpu_s: float | None = None
    requests: int | None = None  # SNMP messages snmpd received
    varbinds: int | None = None  # objects snmpd returned
    shortfall: str | None = None  # what the incomplete devices lacked; None when all were complete

    @property
    def rate(self) -> float:
        return self.devices / self.wall_s

    def per_device_ms(self, seconds: float | None) -> str:
        return "" if seconds is None else f"{1000 * seconds / self.devices:.2f}"

    def per_device(self, count: int | None) -> str:
        return "" if count is None else f"{count / self.devices:.1f}"


class SnmpdMeter:
    """snmpd's CPU (from /proc) and its own request counters, read before and after a run."""

    def __init__(self, snmpd: Snmpd) -> None:
        self.snmpd = snmpd

    def read(self) -> tuple[float, int, int]:
        assert self.snmpd.proc is not None
        pkts = self.snmpd.snmpget(SNMP_IN_PKTS) or "0"
        varbinds = self.snmpd.snmpget(SNMP_IN_REQ_VARS) or "0"
        return cpu_seconds(self.snmpd.proc.pid), int(pkts), int(varbinds)

    def since(self, before: tuple[float, int, int]) -> tuple[float, int, int]:
        cpu, pkts, varbinds = self.read()
        # the two snmpgets of read() itself: 2 messages, 1 varbind each
        return cpu - before[0], pkts - before[1] - 2, varbinds - before[2] - 2


def _snmpwalk(snmpd: Snmpd, oid: str) -> list[str]:
    """``OID value`` lines (numeric OIDs) of a walk of snmpd itself."""
    out = subprocess.run(["snmpwalk", "-v2c", "-c", COMMUNITY, "-On", "-Oq", f"udp:127.0.0.1:{snmpd.port}", oid],
                         env={**os.environ, "MIBS": ""}, capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.splitlines()


def interface_count(snmpd: Snmpd) -> int:
    """How many ifIndex rows snmpd itself lists."""
    return len(_snmpwalk(snmpd, IF_INDEX))


def expected_columns(snmpd: Snmpd) -> Expected:
    """For each of the 14 columns, the ifIndex rows snmpd holds it for (its own walk of ifTable and
    ifXTable); the benchmark refuses to run when a column has no row at all, as it would compare nothing."""
    found: dict[str, set[str]] = {name: set() for _, name, _ in IF_COLUMNS}
    for table in IF_TABLES:
        for line in _snmpwalk(snmpd, table):
            oid = line.split(" ", 1)[0].lstrip(".")
            for col, name, _ in IF_COLUMNS:
                if oid.startswith(col + "."):
                    found[name].add(oid[len(col) + 1:])
    empty = [name for name, rows in found.items() if not rows]
    if empty:
        raise SystemExit(f"snmpd on port {snmpd.port} holds no row of {', '.join(empty)}: nothing to compare")
    return {name: frozenset(rows) for name, rows in found.items()}


def same_data_as_weibao() -> None:
    """The exporter is asked for exactly what weibao's ``system`` and ``if_mib`` profiles poll."""
    profiles = load_profiles()
    ours = {(oid_text(c.oid), c.name) for t in profiles["if_mib"].tables for c in t.columns}
    system = {oid_text(c.oid) for c in profiles["system"].scalars}
    theirs = {(oid, name) for oid, name, _ in IF_COLUMNS}
    if ours != theirs or system != set(SYSTEM_OIDS):
        raise SystemExit("the exporter's columns differ from weibao's if_mib/system profiles: "
                         f"only weibao {sorted(ours - theirs)}, only the exporter {sorted(theirs - ours)}, "
                         f"system scalars {sorted(system ^ set(SYSTEM_OIDS))}")


def _indexes(values: set[str]) -> str:
    return "ifIndex " + ", ".join(sorted(values, key=lambda v: (len(v), v)))


def weibao_missing(result: PollResult, rows: Rows | None, expected: Expected) -> list[str]:
    """What weibao's poll of one device lacks of the system scalars and the 14 columns (empty: complete)."""
    missing = [f"error: {e.message}" for e in result.errors]
    facts = result.facts
    for name in SYSTEM_NAMES:
        have = (any(s.metric == "sys.uptime_s" for s in result.samples) if name == "sysUpTime"
                else facts.get(name) not in (None, ""))
        if not have:
            missing.append(name)
    if rows is None:
        missing.append("the interface rows (no walk)")
        rows = {}
    got: dict[str, set[str]] = {name: set() for _, name, _ in IF_COLUMNS}
    names = {parse_oid(col): name for col, name, _ in IF_COLUMNS}
    for index, cols in rows.items():
        for oid, value in cols.items():
            if oid in names and not isinstance(value, Missing):
                got[names[oid]].add(oid_text(index))
    for name, want in expected.items():
        if lacking := want - got[name]:
            missing.append(f"{name} ({_indexes(set(lacking))})")
    every = frozenset().union(*expected.values())
    fact_rows = {str(i.get("index")) for i in facts.get("interfaces", []) if isinstance(i, dict)}
    if lacking := every - fact_rows:
        missing.append(f"interface fact ({_indexes(set(lacking))})")
    return missing


_IFINDEX = re.compile(r'[{,]ifIndex="([^"]*)"')


def exporter_missing(page: str | None, expected: Expected) -> list[str]:
    """What one exporter page lacks of the six system metrics and the 14 columns (empty: complete)."""
    if page is None:
        return ["the page (no answer)"]
    seen: set[str] = set()
    got: dict[str, set[str]] = {name: set() for _, name, _ in IF_COLUMNS}
    for line in page.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        seen.add(name)
        if name in got and (m := _IFINDEX.search(line)):
            got[name].add(m.group(1))
    missing = [name for name in SYSTEM_NAMES if name not in seen]
    for name, want in expected.items():
        if lacking := want - got[name]:
            missing.append(f"{name} ({_indexes(set(lacking))})")
    return missing


def pages_missing(out_dir: Path, count: int, expected: Expected) -> dict[str, list[str]]:
    """What each of ``count`` saved pages (``out_dir/i.txt``, page i = device i) lacks, by device."""
    missing: dict[str, list[str]] = {}
    for j in range(count):
        page = out_dir / f"{j}.txt"
        lacks = exporter_missing(page.read_text(errors="replace") if page.exists() else None, expected)
        if lacks:
            missing[f"dev{j}"] = lacks
    return missing


class RecordingPoller(SnmpPoller):
    """weibao's poller, keeping a reference to the table rows each device's walk brought back, so that
    the benchmark can check every column came back (the reference costs nothing measurable)."""

    def __init__(self, state: StateStore, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.walked: dict[str, Rows] = {}

    async def _walk(self, device: Device, target: Target, active: list[Profile]) -> Rows:
        rows = await super()._walk(device, target, active)
        self.walked[device.name] = rows
        return rows


def exporter_config(path: Path, mode: str, interfaces: int) -> None:
    """snmp.yml in the 0.21 format (one module holding walk/get/metrics/auth), numeric OIDs only."""
    if mode == "tables":
        walks, reps = IF_TABLES, 25
    else:
        # one more repetition than rows ends each column's walk in one request; at least 6 keeps
        # the six system OIDs in one GET (the exporter batches GETs by max_repetitions)
        walks, reps = [oid for oid, _, _ in IF_COLUMNS], max(6, interfaces + 1)
    lines = ["if_mib:", "  walk:"] + [f"  - {oid}" for oid in walks]
    lines += ["  get:"] + [f"  - {oid}" for oid in SYSTEM_OIDS]
    lines += ["  metrics:"]
    for oid, name, typ in [("1.3.6.1.2.1.1.1", "sysDescr", "DisplayString"), ("1.3.6.1.2.1.1.2", "sysObjectID",
                                                                               "OctetString"),
                           ("1.3.6.1.2.1.1.3", "sysUpTime", "gauge"), ("1.3.6.1.2.1.1.4", "sysContact",
                                                                      "DisplayString"),
                           ("1.3.6.1.2.1.1.5", "sysName", "DisplayString"), ("1.3.6.1.2.1.1.6", "sysLocation",
                                                                             "DisplayString")]:
        lines += [f"  - name: {name}", f"    oid: {oid}", f"    type: {typ}", f"    help: {name}"]
    for oid, name, typ in IF_COLUMNS:
        lines += [f"  - name: {name}", f"    oid: {oid}", f"    type: {typ}", f"    help: {name}",
                  "    indexes:", "    - labelname: ifIndex", "      type: gauge",
                  "    lookups:", "    - labels: [ifIndex]", "      labelname: ifName",
                  "      oid: 1.3.6.1.2.1.31.1.1.1.1", "      type: DisplayString"]
    lines += ["  version: 2", f"  max_repetitions: {reps}", "  retries: 1", "  timeout: 2s",
              "  auth:", f"    community: {COMMUNITY}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def devices(addrs: list[str], port: int) -> list[Device]:
    cred = SnmpCredential(type="snmp", version="2c", community=COMMUNITY)
    return [Device(name=f"dev{i}", address=a, kind=Kind.SWITCH, category=Category.BUSINESS,
                   snmp=SnmpSettings(credential_name="bench", credential=cred, port=port, timeout_s=2.0,
                                     retries=1, profiles=["if_mib"]))
            for i, a in enumerate(addrs)]


def weibao_rounds(devs: list[Device], rounds: int, meter: SnmpdMeter, expected: Expected, *,
                  pysnmp: bool = False, between: Callable[[int], None] | None = None) -> list[Row]:
    """weibao's rounds with one poller (its memory carries over); ``between(i)`` runs after round i."""
    state = StateStore()
    poller = RecordingPoller(state, max_in_flight=IN_FLIGHT, pysnmp_for_community=pysnmp)
    name = "weibao, v2c via pysnmp" if pysnmp else "weibao"

    async def whole() -> list[Row]:
        rows = []
        for i in range(rounds):
            poller.walked.clear()
            before, c0, t0 = meter.read(), self_cpu(), time.monotonic()
            results = await poller.poll_many(devs)
            wall, used = time.monotonic() - t0, self_cpu() - c0
            s_cpu, pkts, varbinds = meter.since(before)
            missing = {r.device: lacks for r in results
                       if (lacks := weibao_missing(r, poller.walked.get(r.device), expected))}
            label = f"{name}, round {i + 1}" + (" (first contact)" if i == 0 else "")
            rows.append(Row(label, len(devs), len(devs) - len(missing), wall, used, s_cpu, None, pkts, varbinds,
                            shortfall(label, len(devs), missing)))
            if between is not None:
                between(i)  # blocks the loop on purpose: nothing of weibao's runs meanwhile
        poller.close()
        return rows

    return asyncio.run(whole())


def start_exporter(conf: Path) -> tuple[subprocess.Popen[bytes], str]:
    web = free_tcp_port()
    proc = subprocess.Popen([EXPORTER, f"--config.file={conf}", f"--web.listen-address=127.0.0.1:{web}",
                             "--log.level=error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{web}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(base + "/", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise SystemExit(f"{EXPORTER} did not start (config {conf})")
        time.sleep(0.1)


def curl_all(urls: list[str], out_dir: Path, in_flight: int) -> float:
    """Fetch every URL with one curl process (parallel, keep-alive); returns curl's CPU seconds."""
    cfg = out_dir / "curl.cfg"
    cfg.write_text("".join(f'url = "{u}"\noutput = "{out_dir}/{i}.txt"\n' for i, u in enumerate(urls)),
                   encoding="utf-8")
    with (out_dir / "curl.err").open("wb") as err:
        proc = subprocess.Popen(["curl", "--silent", "--show-error", "--no-progress-meter", "--parallel",
                                 "--parallel-max", str(in_flight), "--max-time", "30", "--config", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=err)
        # wait4 rather than wait(): it also hands back the child's CPU time
        _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


class Exporter:
    """One running exporter with one config; ``scrape_round()`` scrapes every device once."""

    LABELS: ClassVar[dict[str, str]] = {"tables": "exporter, ifTable+ifXTable walked",
                                        "columns": "exporter, 14 columns walked"}

    def __init__(self, work: Path, mode: str, addrs: list[str], port: int, meter: SnmpdMeter,
                 expected: Expected) -> None:
        self.work, self.meter, self.expected, self.label = work, meter, expected, self.LABELS[mode]
        conf = work / f"snmp-{mode}.yml"
        exporter_config(conf, mode, len(frozenset().union(*expected.values())))
        self.proc, base = start_exporter(conf)
        self.urls = [f"{base}/snmp?module=if_mib&target={a}:{port}" for a in addrs]
        self.rows: list[Row] = []

    def scrape_round(self) -> Row:
        out = self.work / f"round-{len(self.rows)}-{self.label.split(',')[1].split()[0]}"
        out.mkdir()
        before, e0, t0 = self.meter.read(), cpu_seconds(self.proc.pid), time.monotonic()
        client = curl_all(self.urls, out, IN_FLIGHT)
        wall, used = time.monotonic() - t0, cpu_seconds(self.proc.pid) - e0
        s_cpu, pkts, varbinds = self.meter.since(before)
        missing = pages_missing(out, len(self.urls), self.expected)
        if missing:
            errors = (out / "curl.err").read_text(errors="replace").strip()
            print(f"{self.label}: {len(missing)} pages incomplete; curl: {errors[-500:]}", file=sys.stderr)
        shutil.rmtree(out)
        label = f"{self.label}, round {len(self.rows) + 1}"
        row = Row(label, len(self.urls), len(self.urls) - len(missing), wall, used, s_cpu, client, pkts, varbinds,
                  shortfall(label, len(self.urls), missing))
        self.rows.append(row)
        return row

    def close(self) -> None:
        stop(self.proc)


def measure(label: str, n: int, fn: Callable[[], Coroutine[Any, Any, int]]) -> Row:
    c0, t0 = self_cpu(), time.monotonic()
    ok = asyncio.run(fn())
    short = None if ok == n else f"{label}: {n - ok} of {n} targets did not answer the GET"
    return Row(label, n, ok, time.monotonic() - t0, self_cpu() - c0, shortfall=short)


def first_contact(addrs: list[str], port: int, skip_hlapi: bool) -> list[Row]:
    oid = "1.3.6.1.2.1.1.3.0"
    rows = []

    async def ours() -> int:
        t = SnmpTransport()
        auth = t.auth_for(SnmpCredential(type="snmp", version="2c", community=COMMUNITY))
        sem = asyncio.Semaphore(IN_FLIGHT)

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

    rows.append(measure("first contact, weibao transport (1 GET each)", len(addrs), ours))
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
        sem = asyncio.Semaphore(IN_FLIGHT)

        async def one(a: str) -> bool:
            async with sem:
                target = await UdpTransportTarget.create((a, port), timeout=2, retries=1)
                err, status, _i, _b = await get_cmd(engine, CommunityData(COMMUNITY), target, ContextData(),
                                                    ObjectType(ObjectIdentity(oid)))
                return not err and not status
        ok = sum(await asyncio.gather(*(one(a) for a in addrs)))
        engine.close_dispatcher()
        return ok

    rows.append(measure("first contact, pysnmp hlapi get_cmd (1 GET each)", len(addrs), hlapi))
    return rows


def check(rows: Sequence[Row]) -> None:
    """Every device complete in every round on every side, or the benchmark stops here."""
    require_complete("snmp_poll", [r.shortfall for r in rows if r.shortfall is not None])


def table(rows: list[Row]) -> str:
    head = ("run", "devices", "complete", "wall s", "devices/s", "poller CPU ms/dev", "snmpd CPU ms/dev",
            "client CPU ms/dev", "requests/dev", "varbinds/dev")
    return markdown_table(head, [
        (r.label, str(r.devices), str(r.complete), f"{r.wall_s:.2f}", f"{r.rate:.0f}", r.per_device_ms(r.cpu_s),
         r.per_device_ms(r.snmpd_cpu_s), r.per_device_ms(r.client_cpu_s), r.per_device(r.requests),
         r.per_device(r.varbinds)) for r in rows])


def summary(ours: list[Row], theirs: list[Row]) -> str:
    """Steady-state ratios, each the best of its side: weibao's rounds after the first, every exporter round."""
    steady = ours[1:] or ours
    w, e = min(steady, key=lambda r: r.wall_s), min(theirs, key=lambda r: r.wall_s)
    w_cpu, e_cpu = min(steady, key=lambda r: r.cpu_s), min(theirs, key=lambda r: r.cpu_s)
    w_snmpd = min(steady, key=lambda r: r.snmpd_cpu_s or 0.0)
    e_snmpd = min(theirs, key=lambda r: r.snmpd_cpu_s or 0.0)
    return markdown_table(("weibao / exporter, best of each", "ratio", "weibao", "exporter"), left=(0, 3), rows=[
        ("devices/s (higher is better)", ratio(w.rate, e.rate), f"{w.rate:.0f}", f"{e.rate:.0f} ({e.label})"),
        ("poller CPU per device (lower is better)", ratio(w_cpu.cpu_s, e_cpu.cpu_s),
         w_cpu.per_device_ms(w_cpu.cpu_s) + " ms", f"{e_cpu.per_device_ms(e_cpu.cpu_s)} ms ({e_cpu.label})"),
        ("snmpd CPU per device (lower is better)", ratio(w_snmpd.snmpd_cpu_s or 0.0, e_snmpd.snmpd_cpu_s or 0.0),
         w_snmpd.per_device_ms(w_snmpd.snmpd_cpu_s) + " ms",
         f"{e_snmpd.per_device_ms(e_snmpd.snmpd_cpu_s)} ms ({e_snmpd.label})"),
    ])


NOTES = """\
Notes: both sides fetch the six system scalars and the 14 IF-MIB columns of weibao's if_mib profile
for every interface, and each device counts as complete only if all of it came back (checked on both
sides, every round, before these tables were printed). weibao: one GET of
the system scalars, then one GETBULK walking all 14 columns side by side (max-repetitions = last poll's
row count + 1, so round 1 asks more). Exporter: one GET, then either two subtree walks (ifTable and
ifXTable whole: more varbinds than needed, fewer requests) or one walk per column (exactly the same
varbinds). Requests and varbinds per device are snmpd's own counters. The exporter is scraped by curl
in its own process; in production a Prometheus server would pay that client cost, weibao pays its own
decoding in "poller CPU". Both keep 32 devices in flight, and their rounds take turns (weibao, then each
exporter config) so a busy moment of the shared machine hits both. Compare ratios within one run, not
absolute numbers across runs."""


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--exporter-modes", default=",".join(EXPORTER_MODES),
                    help="comma-separated: tables (ifTable+ifXTable walked whole), columns (one walk per column)")
    ap.add_argument("--skip-hlapi", action="store_true", help="skip the (slow) pysnmp hlapi first-contact run")
    ap.add_argument("--skip-pysnmp", action="store_true", help="skip weibao's rounds with v2c through pysnmp")
    args = ap.parse_args()
    modes = [m for m in args.exporter_modes.split(",") if m]
    if not 1 <= args.devices <= 60000 or not 1 <= args.rounds <= 10:
        raise SystemExit("--devices must be 1..60000, --rounds 1..10")
    if any(m not in EXPORTER_MODES for m in modes):
        raise SystemExit(f"--exporter-modes: choose from {', '.join(EXPORTER_MODES)}")
    for binary in (EXPORTER, "curl", "snmpwalk"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} not found (apt-get install prometheus-snmp-exporter curl snmp)")
    same_data_as_weibao()
    addrs = loopback_addresses(args.devices)
    with running_snmpd(bind_all=True) as snmpd:
        meter = SnmpdMeter(snmpd)
        interfaces = interface_count(snmpd)
        expected = expected_columns(snmpd)
        header = (f"snmpd on udp:{snmpd.port} (all loopback addresses), {interfaces} interfaces; "
                  f"{args.devices} devices, {os.cpu_count()} cores, {IN_FLIGHT} in flight; complete = the six "
                  f"system values and {sum(len(v) for v in expected.values())} column values per device")
        # weibao's and the exporters' rounds take turns, so a busy moment of the shared machine hits
        # both; the fast runs first: the pysnmp runs leave a large heap behind that slows what follows
        with tempfile.TemporaryDirectory(prefix="weibao-bench-") as tmp:
            exporters: list[Exporter] = []

            def exporters_round(_i: int) -> None:
                for e in exporters:
                    e.scrape_round()

            try:
                for m in modes:
                    exporters.append(Exporter(Path(tmp), m, addrs, snmpd.port, meter, expected))
                ours = weibao_rounds(devices(addrs, snmpd.port), args.rounds, meter, expected,
                                     between=exporters_round)
            finally:
                for e in exporters:
                    e.close()
        theirs = [r for e in exporters for r in e.rows]
        gc.collect()
        contact = first_contact(addrs, snmpd.port, args.skip_hlapi)
        gc.collect()
        slow = [] if args.skip_pysnmp else weibao_rounds(devices(addrs, snmpd.port), args.rounds, meter,
                                                         expected, pysnmp=True)
    check(ours + theirs + contact + slow)
    print(header)
    print()
    print(table(ours + theirs + contact + slow))
    print()
    if theirs:
        print(summary(ours, theirs))
        print()
    print(NOTES)


if __name__ == "__main__":
    main()
