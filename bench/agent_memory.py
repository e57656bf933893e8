"""Resident memory of the agent daemon and the collector with large inventories, against the snmp exporter's.

    .venv/bin/python bench/agent_memory.py [--devices 1000,5000] [--rounds 3] [--max-s 150]

For each inventory size N: one snmpd bound to ``udp:PORT`` answers on every 127.1.x.y (N devices),
the real collector (SQLite backend) and the real agent daemon (``python -m weibao.agent.commands.agent agent``)
run as subprocesses; every device gets ICMP (3 probes) and SNMP (the system scalars and the IF-MIB
``if_mib`` profile) on a short interval, and the agent ships what it polls to the collector. After
``rounds`` SNMP runs have finished (or ``max-s`` seconds, whichever is first) the agent's and the
collector's VmRSS (now) and VmHWM (peak) are read from /proc (the collector with its worker
processes). Then Debian's prometheus-snmp-exporter scrapes the same N devices for the same data
``rounds`` times (curl, 32 in flight) and its memory is read the same way. The agent also does ICMP,
spooling and shipping, which the exporter does not: the comparison is of what each costs to run.

Before anything is printed, the work is checked on both sides. weibao: every job ran ``rounds`` times
within ``max-s``, and the collector stored, for every device, ``rounds`` readings of ``sys.uptime_s`` and
of ``icmp.rtt_ms`` and a traffic series for every interface snmpd has. The exporter: it is asked for the
columns of weibao's profiles (checked against them), and every page of every scrape holds the six system
metrics and each of the 14 columns for every ifIndex snmpd holds it for. A shortfall stops the benchmark
with a non-zero exit and what was missing.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    Memory,
    loopback_addresses,
    markdown_table,
    memory,
    ratio,
    require_complete,
    shortfall,
    stop,
)
from bench.snmp_poll import (  # noqa: E402
    EXPORTER,
    Expected,
    curl_all,
    expected_columns,
    exporter_config,
    interface_count,
    pages_missing,
    same_data_as_weibao,
    start_exporter,
)
from tests.peers.collector import run_collector  # noqa: E402
from tests.peers.snmpd import COMMUNITY, running_snmpd  # noqa: E402
from weibao.agent.spool import SPOOL_FILE, open_stats  # noqa: E402

AGENT = "bench-agent"
IN_FLIGHT = 32


@dataclass(frozen=True)
class Reading:
    process: str
    devices: int
    rounds: str
    mem: Memory
    note: str = ""

    @property
    def rss_mib(self) -> float:
        return self.mem.rss_kib / 1024

    @property
    def hwm_mib(self) -> float:
        return self.mem.hwm_kib / 1024


def inventory(path: Path, addrs: list[str], snmp_port: int, every_s: float) -> None:
    """JSON is YAML: one device per address, ICMP and SNMP (system + if_mib) every ``every_s`` seconds."""
    doc = {
        "site": "bench",
        "credentials": {"bench-v2c": {"type": "snmp", "version": "2c", "community": COMMUNITY}},
        "defaults": {
            "kind": "switch", "category": "business",
            "icmp": {"count": 3, "interval_ms": 20, "timeout_ms": 1000},
            "snmp": {"credential": "bench-v2c", "port": snmp_port, "timeout_s": 2, "retries": 1,
                     "profiles": ["if_mib"]},
            "schedule": {"icmp_s": every_s, "snmp_s": every_s, "timeout_s": max(60.0, 4 * every_s)},
        },
        "devices": [{"name": f"dev-{i:05d}", "address": a} for i, a in enumerate(addrs)],
    }
    path.write_text(json.dumps(doc), encoding="utf-8")


def job_runs(data: Path) -> dict[str, tuple[int, int, float]]:
    """(finished, skipped, last run's seconds) per job, from the status the daemon keeps in its spool."""
    try:
        daemon = open_stats(data / SPOOL_FILE).meta.get("daemon") or {}
    except Exception:  # the spool may not exist yet, or be mid-write
        return {}
    return {name: (int(js.get("runs", 0)), int(js.get("skipped", 0)), float(js.get("last_duration_s") or 0.0))
            for name, js in (daemon.get("jobs") or {}).items()}


def stored_missing(state_db: Path, devices: int, rounds: int, interfaces: int) -> dict[str, list[str]]:
    """What the collector lacks of each device's ``rounds`` runs, by device (empty: all there)."""
    conn = sqlite3.connect(state_db)
    try:
        counts = {(d, m, lab): n for d, m, lab, n in conn.execute(
            "SELECT s.device, s.metric, s.labels, count(*) FROM ts_samples t JOIN ts_series s"
            " ON s.id = t.series_id GROUP BY s.id")}
    finally:
        conn.close()
    per_device: dict[str, dict[str, int]] = {}
    links: dict[str, int] = {}
    for (d, m, _lab), n in counts.items():
        per_device.setdefault(d, {})[m] = n
        if m == "if.in_bps":
            links[d] = links.get(d, 0) + 1
    missing: dict[str, list[str]] = {}
    for i in range(devices):
        name = f"dev-{i:05d}"
        got = per_device.get(name, {})
        lacks = [f"{m} ({got.get(m, 0)} of {rounds} readings)" for m in ("sys.uptime_s", "icmp.rtt_ms")
                 if got.get(m, 0) < rounds]
        if rounds >= 2 and links.get(name, 0) != interfaces:  # a rate needs two readings
            lacks.append(f"if.in_bps ({links.get(name, 0)} of {interfaces} interfaces)")
        if lacks:
            missing[name] = lacks
    return missing


def weibao_side(work: Path, addrs: list[str], snmp_port: int, rounds: int, max_s: float, interfaces: int,
                problems: list[str]) -> list[Reading]:
    every_s = max(10.0, len(addrs) / 250)  # a round of N devices must fit in its interval
    with run_collector(work / "collector") as peer:
        token = work / "agent.token"
        token.write_text(peer.token(AGENT) + "\n", encoding="utf-8")
        token.chmod(0o600)
        inv = work / "inventory.yaml"
        inventory(inv, addrs, snmp_port, every_s)
        data = work / "agent"
        log = (work / "agent.log").open("wb")
        agent = subprocess.Popen([sys.executable, "-m", "weibao", "agent", "--inventory", str(inv),
                                  "--collector", peer.url, "--token-file", str(token), "--data", str(data),
                                  "--name", AGENT, "--no-traps"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + max_s
            runs: dict[str, tuple[int, int, float]] = {}
            while time.monotonic() < deadline and agent.poll() is None:
                runs = job_runs(data)
                if any(n.startswith("snmp") for n in runs) and all(r[0] >= rounds for r in runs.values()):
                    break
                time.sleep(1.0)
            if agent.poll() is not None:
                tail = (work / "agent.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"the agent exited with {agent.returncode}:\n{tail}")
            time.sleep(2.0)  # the last run's shipment
            a_mem, c_mem = memory(agent.pid), memory(peer.proc.pid, tree=True)
        finally:
            stop(agent, 30)  # drains: what the finished runs found is shipped before it exits
            log.close()
        stats = open_stats(data / SPOOL_FILE)
        state_db = peer.data_dir / "state.db"
    label = f"weibao, {len(addrs)} devices"
    short = [f"{label}: {n} ran {r} of {rounds} times within {max_s:g} s" for n, (r, _, _) in sorted(runs.items())
             if r < rounds]
    if not any(n.startswith("snmp") for n in runs):
        short.append(f"{label}: no SNMP run within {max_s:g} s")
    problems += short
    if not short and (p := shortfall(f"{label}, stored by the collector", len(addrs),
                                     stored_missing(state_db, len(addrs), rounds, interfaces))):
        problems.append(p)
    # a run still going when the next is due is skipped, not stacked: the interval was too short for N
    done = ", ".join(f"{n.split('/')[0]} {r}" + (f" ({k} skipped)" if k else "")
                     for n, (r, k, _) in sorted(runs.items()))
    took = ", ".join(f"{n.split('/')[0]} run {d:.1f} s" for n, (_, _, d) in sorted(runs.items()))
    shipped = stats.counters.get("shipped_rows", 0)
    return [Reading("weibao agent (ICMP + SNMP, spool, ship)", len(addrs), done, a_mem, f"every {every_s:g} s; {took}"),
            Reading("weibao collector (SQLite, all processes)", len(addrs), done, c_mem,
                    f"{shipped:,} rows received")]


def exporter_side(work: Path, addrs: list[str], snmp_port: int, rounds: int, expected: Expected,
                  problems: list[str]) -> Reading:
    conf = work / "snmp.yml"
    exporter_config(conf, "tables", len(frozenset().union(*expected.values())))
    proc, base = start_exporter(conf)
    try:
        urls = [f"{base}/snmp?module=if_mib&target={a}:{snmp_port}" for a in addrs]
        for i in range(rounds):  # it keeps nothing between scrapes: memory is set by the scrapes in flight
            out = work / f"scrape{i}"
            out.mkdir()
            curl_all(urls, out, IN_FLIGHT)
            if p := shortfall(f"exporter, {len(addrs)} devices, scrape {i + 1}", len(urls),
                              pages_missing(out, len(urls), expected)):
                problems.append(p)
        mem = memory(proc.pid)
    finally:
        stop(proc)
    return Reading("prometheus-snmp-exporter (SNMP only)", len(addrs), f"scrapes {rounds}", mem)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--devices", default="1000,5000", help="comma-separated inventory sizes")
    ap.add_argument("--rounds", type=int, default=3, help="SNMP runs (and exporter scrapes) before reading")
    ap.add_argument("--max-s", type=float, default=150.0, help="at most this long per size for the agent")
    args = ap.parse_args()
    sizes = [int(x) for x in args.devices.split(",") if x]
    if not sizes or any(not 1 <= n <= 60_000 for n in sizes) or not 1 <= args.rounds <= 10:
        raise SystemExit("--devices: sizes 1..60000; --rounds 1..10")
    if not Path(EXPORTER).exists():
        raise SystemExit(f"{EXPORTER} not found (apt-get install prometheus-snmp-exporter)")
    same_data_as_weibao()
    readings: list[Reading] = []
    problems: list[str] = []
    with running_snmpd(bind_all=True) as snmpd:
        interfaces = interface_count(snmpd)
        expected = expected_columns(snmpd)
        for n in sizes:
            addrs = loopback_addresses(n)
            with tempfile.TemporaryDirectory(prefix="weibao-bench-") as tmp:
                work = Path(tmp)
                (work / "collector").mkdir()
                ours = weibao_side(work, addrs, snmpd.port, args.rounds, args.max_s, interfaces, problems)
                theirs = exporter_side(work, addrs, snmpd.port, args.rounds, expected, problems)
            readings += [*ours, theirs]
            print(f"{n} devices done", file=sys.stderr)
    require_complete("agent_memory", problems)
    print(f"snmpd with {interfaces} interfaces answering every 127.1.x.y; memory after {args.rounds} SNMP rounds; "
          "every device's runs stored by the collector and every exporter page complete\n")
    rows = []
    for r in readings:
        exporter = next(x for x in readings if x.devices == r.devices and x.process.startswith("prometheus"))
        rows.append((r.process, str(r.devices), r.rounds, f"{r.rss_mib:.0f}", f"{r.hwm_mib:.0f}",
                     "" if r is exporter else ratio(r.mem.rss_kib, exporter.mem.rss_kib), r.note))
    print(markdown_table(("process", "devices", "runs done", "RSS MiB", "peak RSS MiB", "RSS / exporter's",
                          "note"), rows, left=(0, 2, 6)))
    if len(sizes) > 1:
        lo, hi = min(sizes), max(sizes)
        slopes = []
        for name in dict.fromkeys(r.process for r in readings):
            a = next(r for r in readings if r.process == name and r.devices == lo)
            b = next(r for r in readings if r.process == name and r.devices == hi)
            slopes.append(f"{name.split(' (')[0]} {(b.mem.rss_kib - a.mem.rss_kib) / (hi - lo):.1f}")
        print(f"\nRSS per added device between {lo} and {hi} devices, KiB: {'; '.join(slopes)}")
    print("\nNotes: RSS = VmRSS after the last round, peak = VmHWM. The agent also pings every device and keeps "
          "a durable spool; the collector stores what it receives. The exporter holds nothing between scrapes.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
