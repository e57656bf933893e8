"""Sweep many loopback addresses with weibao's ICMP engine and with fping; compare cost and RTTs.

    .venv/bin/python bench/icmp_sweep.py [--hosts 1000] [--count 5] [--repeat 3]

Both send ``count`` probes to each of ``hosts`` addresses 127.1.x.y, ``period`` ms apart per host and
``gap`` ms apart overall (fping ``-C count -q -p period -i gap -t timeout``; weibao at the same pace,
and once more at its default pace). Wall and CPU seconds (getrusage: self for weibao, which runs in
this process, children for fping) and the RTTs each reports are the median of ``repeat`` runs.
Needs root (or CAP_NET_RAW, or a widened net.ipv4.ping_group_range) for both tools.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.pollers.icmp import DEFAULT_RATE_PPS, ping_addresses


@dataclass(frozen=True)
class Run:
    hosts: int
    probes: int
    replies: int
    wall_s: float
    cpu_s: float
    rtts_ms: list[float]

    def pct(self, q: float) -> float:
        if not self.rtts_ms:
            return float("nan")
        ordered = sorted(self.rtts_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def addresses(n: int) -> list[str]:
    if n > 250 * 256:
        raise SystemExit("at most 64,000 hosts")
    return [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(n)]


def run_weibao(hosts: list[str], count: int, period_ms: float, timeout_ms: float, rate_pps: float) -> Run:
    cpu0, t0 = _cpu(resource.RUSAGE_SELF), time.perf_counter()
    stats = asyncio.run(ping_addresses(hosts, count, period_ms, timeout_ms, max_in_flight=len(hosts),
                                       rate_pps=rate_pps))
    wall, cpu = time.perf_counter() - t0, _cpu(resource.RUSAGE_SELF) - cpu0
    rtts = [r for s in stats.values() for r in s.answered]
    return Run(len(hosts), len(hosts) * count, len(rtts), wall, cpu, rtts)


def run_fping(hosts: list[str], count: int, period_ms: float, timeout_ms: float, gap_ms: float) -> Run:
    argv = ["fping", "-C", str(count), "-q", "-p", f"{period_ms:g}", "-i", f"{gap_ms:g}",
            "-t", f"{timeout_ms:g}", *hosts]
    cpu0, t0 = _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    wall, cpu = time.perf_counter() - t0, _cpu(resource.RUSAGE_CHILDREN) - cpu0
    if done.returncode not in (0, 1):  # 1: some host unreachable
        raise SystemExit(f"fping failed ({done.returncode}): {done.stderr.strip()[:500]}")
    rtts: list[float] = []
    for line in done.stderr.splitlines():  # "127.1.0.1 : 0.04 0.03 - 0.05 0.04"
        if " : " in line:
            rtts.extend(float(v) for v in line.split(" : ", 1)[1].split() if v != "-")
    return Run(len(hosts), len(hosts) * count, len(rtts), wall, cpu, rtts)


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


def summarise(name: str, runs: Sequence[Run]) -> Row:
    med = statistics.median
    return Row(name, runs[0].hosts, runs[0].probes, med(r.replies for r in runs), med(r.wall_s for r in runs),
               med(r.cpu_s for r in runs), med(r.pct(0.5) for r in runs), med(r.pct(0.99) for r in runs),
               med(max(r.rtts_ms, default=float("nan")) for r in runs))


def table(rows: Sequence[Row], ratio: tuple[Row, Row]) -> str:
    head = ("tool", "hosts", "probes", "replies", "wall s", "CPU s", "hosts/s", "RTT median ms", "RTT p99 ms",
            "RTT max ms")
    lines = [head]
    for r in rows:
        lines.append((r.name, str(r.hosts), str(r.probes), f"{r.replies:.0f}", f"{r.wall_s:.3f}",
                      f"{r.cpu_s:.3f}", f"{r.hosts_per_s:.0f}", f"{r.median_ms:.3f}", f"{r.p99_ms:.3f}",
                      f"{r.max_ms:.3f}"))
    ours, theirs = ratio

    def q(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "-"

    lines.append((f"ratio {ours.name} / {theirs.name}", "", "", "", q(ours.wall_s, theirs.wall_s),
                  q(ours.cpu_s, theirs.cpu_s), q(ours.hosts_per_s, theirs.hosts_per_s),
                  q(ours.median_ms, theirs.median_ms), q(ours.p99_ms, theirs.p99_ms), q(ours.max_ms, theirs.max_ms)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    fmt: Callable[[tuple[str, ...]], str] = lambda cells: "| " + " | ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"
    out = [fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(fmt(line) for line in lines[1:])
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--count", type=int, default=5, help="probes per host")
    p.add_argument("--period-ms", type=float, default=20, help="between one host's probes")
    p.add_argument("--gap-ms", type=float, default=1, help="between any two sends (fping -i)")
    p.add_argument("--timeout-ms", type=float, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    if not 1 <= a.hosts <= 64_000 or not 1 <= a.count <= 100 or not 1 <= a.repeat <= 20:
        p.error("--hosts 1..64000, --count 1..100, --repeat 1..20")
    if shutil.which("fping") is None:
        p.error("fping is not installed")
    hosts = addresses(a.hosts)
    same_pace = 1000.0 / a.gap_ms
    runs: dict[str, list[Run]] = {"fping": [], "weibao": [], "weibao default pace": []}
    for i in range(a.repeat):
        runs["fping"].append(run_fping(hosts, a.count, a.period_ms, a.timeout_ms, a.gap_ms))
        runs["weibao"].append(run_weibao(hosts, a.count, a.period_ms, a.timeout_ms, same_pace))
        runs["weibao default pace"].append(run_weibao(hosts, a.count, a.period_ms, a.timeout_ms,
                                                      DEFAULT_RATE_PPS))
        print(f"run {i + 1}/{a.repeat} done", file=sys.stderr)
    rows = [summarise(name, r) for name, r in runs.items()]
    print(f"{a.hosts} hosts x {a.count} probes, {a.period_ms:g} ms per host, fping -i {a.gap_ms:g} "
          f"(weibao {same_pace:g} pkt/s; default pace {DEFAULT_RATE_PPS:g} pkt/s), timeout {a.timeout_ms:g} ms, "
          f"median of {a.repeat} runs")
    print(table(rows, (rows[1], rows[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
