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
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Memory, loopback_addresses, markdown_table, memory, ratio, stop  # noqa: E402
from bench.snmp_poll import EXPORTER, curl_all, exporter_config, interface_count, start_exporter  # noqa: E402
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


def weibao_side(work: Path, addrs: list[str], snmp_port: int, rounds: int, max_s: float) -> list[Reading]:
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
                snmp = [n for n in runs if n.startswith("snmp")]
                if snmp and all(runs[n][0] >= rounds for n in snmp):
                    break
                time.sleep(1.0)
            if agent.poll() is not None:
                tail = (work / "agent.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"the agent exited with {agent.returncode}:\n{tail}")
            time.sleep(2.0)  # the last run's shipment
            a_mem, c_mem = memory(agent.pid), memory(peer.proc.pid, tree=True)
            stats = open_stats(data / SPOOL_FILE)
        finally:
            stop(agent, 30)
            log.close()
    # a run still going when the next is due is skipped, not stacked: the interval was too short for N
    done = ", ".join(f"{n.split('/')[0]} {r}" + (f" ({k} skipped)" if k else "")
                     for n, (r, k, _) in sorted(runs.items()))
    took = ", ".join(f"{n.split('/')[0]} run {d:.1f} s" for n, (_, _, d) in sorted(runs.items()))
    shipped = stats.counters.get("shipped_rows", 0)
    return [Reading("weibao agent (ICMP + SNMP, spool, ship)", len(addrs), done, a_mem, f"every {every_s:g} s; {took}"),
            Reading("weibao collector (SQLite, all processes)", len(addrs), done, c_mem,
                    f"{shipped:,} rows received")]


def exporter_side(work: Path, addrs: list[str], snmp_port: int, rounds: int, interfaces: int) -> Reading:
    conf = work / "snmp.yml"
    exporter_config(conf, "tables", interfaces)
    proc, base = start_exporter(conf)
    try:
        urls = [f"{base}/snmp?module=if_mib&target={a}:{snmp_port}" for a in addrs]
        for i in range(rounds):  # it keeps nothing between scrapes: memory is set by the scrapes in flight
            out = work / f"scrape{i}"
            out.mkdir()
            curl_all(urls, out, IN_FLIGHT)
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
    readings: list[Reading] = []
    with running_snmpd(bind_all=True) as snmpd:
        interfaces = interface_count(snmpd)
        for n in sizes:
            addrs = loopback_addresses(n)
            with tempfile.TemporaryDirectory(prefix="weibao-bench-") as tmp:
                work = Path(tmp)
                (work / "collector").mkdir()
                ours = weibao_side(work, addrs, snmpd.port, args.rounds, args.max_s)
                theirs = exporter_side(work, addrs, snmpd.port, args.rounds, interfaces)
            readings += [*ours, theirs]
            print(f"{n} devices done", file=sys.stderr)
    print(f"snmpd with {interfaces} interfaces answering every 127.1.x.y; memory after {args.rounds} SNMP rounds\n")
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
