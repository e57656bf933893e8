"""Sweep many loopback addresses with weibao's ICMP engine and with fping; compare cost and RTTs.

    .venv/bin/python bench/icmp_sweep.py [--hosts 1000] [--count 5] [--repeat 3] [--paces 1000,10000,0]

Both send ``count`` probes to each of ``hosts`` addresses 127.1.x.y, ``period`` ms apart per host
(fping ``-C count -q -p period -i gap -t timeout``), at each configured pace: the same packets per
second for both (fping ``-i 1000/pace``; weibao's pacer at ``pace``), 0 meaning unpaced (fping ``-i 0``,
weibao's pacer out of the way). fping's ``-i`` is a least gap that its timer overshoots, weibao's pacer
keeps the average: at the same configured pace the achieved packets/s differ, and the wall time with
them, so the column to compare for efficiency is CPU per probe. Wall and CPU seconds (getrusage: self
for weibao, which runs in this process, children for fping) and the RTTs each reports are the median
of ``repeat`` runs. RTTs: fping reads the clock after the reply reaches it, weibao uses the kernel's
receive timestamp, so weibao's RTTs exclude time a reply waited for the process.
Loopback answers every probe: every run of either tool must bring back every reply, counted per host
from what the tool itself reports, or the benchmark stops (non-zero exit, naming the hosts short of
replies) before printing a ratio. CPU per probe and probes/s count the probes answered.
Needs root (or CAP_NET_RAW, or a widened net.ipv4.ping_group_range) for both tools.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import loopback_addresses, markdown_table, median, ratio, require_complete, shortfall
from weibao.agent.pollers.icmp import ping_addresses

UNPACED_PPS = 1e9  # weibao's pacer needs a rate: this one never makes a send wait


@dataclass(frozen=True)
class Run:
    probes: int  # requested
    wall_s: float
    cpu_s: float
    rtts_ms: list[float]
    per_host: dict[str, int]  # replies received per host asked, as the tool reports them

    @property
    def hosts(self) -> int:
        return len(self.per_host)

    @property
    def replies(self) -> int:
        return sum(self.per_host.values())

    def shortfall(self, label: str, count: int) -> str | None:
        """What this run left unanswered (loopback answers every probe), or None."""
        missing = {h: [f"{n} of {count} replies"] for h, n in self.per_host.items() if n != count}
        return shortfall(f"{label}: {self.replies} of {self.probes} replies", self.hosts, missing, unit="hosts")

    def pct(self, q: float) -> float:
        if not self.rtts_ms:
            return float("nan")
        ordered = sorted(self.rtts_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_weibao(hosts: list[str], count: int, period_ms: float, timeout_ms: float, rate_pps: float) -> Run:
    cpu0, t0 = _cpu(resource.RUSAGE_SELF), time.perf_counter()
    stats = asyncio.run(ping_addresses(hosts, count, period_ms, timeout_ms, max_in_flight=len(hosts),
                                       rate_pps=rate_pps))
    wall, cpu = time.perf_counter() - t0, _cpu(resource.RUSAGE_SELF) - cpu0
    rtts = [r for s in stats.values() for r in s.answered]
    per_host = {h: stats[h].received if h in stats else 0 for h in hosts}
    return Run(len(hosts) * count, wall, cpu, rtts, per_host)


def run_fping(hosts: list[str], count: int, period_ms: float, timeout_ms: float, gap_ms: float) -> Run:
    argv = ["fping", "-C", str(count), "-q", "-p", f"{period_ms:g}", "-i", f"{gap_ms:g}",
            "-t", f"{timeout_ms:g}", *hosts]
    cpu0, t0 = _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    wall, cpu = time.perf_counter() - t0, _cpu(resource.RUSAGE_CHILDREN) - cpu0
    if done.returncode not in (0, 1):  # 1: some host unreachable
        raise SystemExit(f"fping failed ({done.returncode}): {done.stderr.strip()[:500]}")
    rtts: list[float] = []
    per_host = dict.fromkeys(hosts, 0)  # a host without a result line got nothing
    for line in done.stderr.splitlines():  # "127.1.0.1 : 0.04 0.03 - 0.05 0.04", one "-" per lost probe
        if " : " in line:
            host, values = line.split(" : ", 1)
            got = [float(v) for v in values.split() if v != "-"]
            if host.strip() in per_host:
                per_host[host.strip()] = len(got)
                rtts.extend(got)
    return Run(len(hosts) * count, wall, cpu, rtts, per_host)


@dataclass(frozen=True)
class Row:
    name: str
    hosts: int
    probes: int
    replies: float
    wall_s: float
    cpu_s: float
    median_ms: float
    p99_ms: float
    max_ms: float

    @property
    def hosts_per_s(self) -> float:
        return self.hosts / self.wall_s if self.wall_s else float("nan")

    @property
    def probes_per_s(self) -> float:
        """Probes answered per second."""
        return self.replies / self.wall_s if self.wall_s else float("nan")

    @property
    def cpu_us_per_probe(self) -> float:
        """CPU per probe answered."""
        return 1e6 * self.cpu_s / self.replies if self.replies else float("nan")


def summarise(name: str, runs: Sequence[Run]) -> Row:
    return Row(name, runs[0].hosts, runs[0].probes, median(r.replies for r in runs), median(r.wall_s for r in runs),
               median(r.cpu_s for r in runs), median(r.pct(0.5) for r in runs), median(r.pct(0.99) for r in runs),
               median(max(r.rtts_ms, default=float("nan")) for r in runs))


def table(pairs: Sequence[tuple[Row, Row]]) -> str:
    """fping's row, weibao's row and their ratio, for each pace."""
    head = ("tool", "hosts", "probes", "replies", "wall s", "answered/s", "CPU s", "CPU µs/answered",
            "RTT median ms", "RTT p99 ms", "RTT max ms")
    lines: list[tuple[str, ...]] = []
    for theirs, ours in pairs:
        for r in (theirs, ours):
            lines.append((r.name, str(r.hosts), str(r.probes), f"{r.replies:.0f}", f"{r.wall_s:.3f}",
                          f"{r.probes_per_s:.0f}", f"{r.cpu_s:.3f}", f"{r.cpu_us_per_probe:.1f}",
                          f"{r.median_ms:.3f}", f"{r.p99_ms:.3f}", f"{r.max_ms:.3f}"))
        lines.append(("ratio weibao / fping", "", "", "", ratio(ours.wall_s, theirs.wall_s),
                      ratio(ours.probes_per_s, theirs.probes_per_s), ratio(ours.cpu_s, theirs.cpu_s),
                      ratio(ours.cpu_us_per_probe, theirs.cpu_us_per_probe), ratio(ours.median_ms, theirs.median_ms),
                      ratio(ours.p99_ms, theirs.p99_ms), ratio(ours.max_ms, theirs.max_ms)))
    return markdown_table(head, lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--count", type=int, default=5, help="probes per host")
    p.add_argument("--period-ms", type=float, default=20, help="between one host's probes")
    p.add_argument("--paces", default="1000,10000,0",
                   help="comma-separated packets/s, the same for both tools (fping -i 1000/pace); 0: unpaced")
    p.add_argument("--timeout-ms", type=float, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    try:
        paces = [float(x) for x in a.paces.split(",") if x]
    except ValueError:
        p.error("--paces: numbers, e.g. 1000,10000,0")
    if not 1 <= a.hosts <= 64_000 or not 1 <= a.count <= 100 or not 1 <= a.repeat <= 20:
        p.error("--hosts 1..64000, --count 1..100, --repeat 1..20")
    if not paces or any(x < 0 or 0 < x < 10 for x in paces):
        p.error("--paces: 0 (unpaced) or at least 10 packets/s each")
    if shutil.which("fping") is None:
        p.error("fping is not installed")
    hosts = loopback_addresses(a.hosts)
    pairs: list[tuple[Row, Row]] = []
    problems: list[str] = []
    for pace in paces:
        gap_ms = 1000.0 / pace if pace else 0.0
        label = f"{pace:g} pkt/s" if pace else "unpaced"
        fping: list[Run] = []
        ours: list[Run] = []
        for _ in range(a.repeat):  # interleaved so a noisy moment hits both
            fping.append(run_fping(hosts, a.count, a.period_ms, a.timeout_ms, gap_ms))
            ours.append(run_weibao(hosts, a.count, a.period_ms, a.timeout_ms, pace or UNPACED_PPS))
        for tool, runs in (("fping", fping), ("weibao", ours)):
            problems += [msg for i, r in enumerate(runs)
                         if (msg := r.shortfall(f"{tool} ({label}), run {i + 1}", a.count)) is not None]
        pairs.append((summarise(f"fping -i {gap_ms:g} ({label})", fping), summarise(f"weibao ({label})", ours)))
        print(f"pace {label} done", file=sys.stderr)
    require_complete("icmp_sweep", problems)
    print(f"{a.hosts} hosts x {a.count} probes, {a.period_ms:g} ms per host, timeout {a.timeout_ms:g} ms, "
          f"median of {a.repeat} runs; every probe of every run "
          "answered on both sides\n")
    print(table(pairs))
    print("\nNotes: at a configured pace both tools are asked for the same packets/s; fping's -i is a least gap "
          "its timer overshoots, weibao's pacer keeps the average, so compare CPU per probe answered (the cost) and "
          "answered/s (what each achieved). Unpaced shows the most each can send. fping's RTTs are taken in "
          "user space, weibao's from the kernel's receive timestamp.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
