"""Run every benchmark in bench/ in bounded time and collect their tables into bench/results/latest.md.

    .venv/bin/python bench/run_all.py [--quick] [--only snmp_poll,icmp_sweep] [--list]
    ./dev bench [--quick] ...

Each benchmark runs as its own process (moderate sizes by default, smaller with ``--quick``) with a
time limit; one that fails or runs out of time is reported as such and the rest still run. Its
standard output (the tables) goes into the results file and to the terminal, its standard error into
``bench/results/NAME.log``. Every table compares weibao with a peer measured in the same run: read
the ratios, not the absolute numbers, which depend on what else the machine is doing. Each benchmark
first checks that the work was complete and the same on both sides (every device, column, reply,
sample or ticket asked for); if not, it prints no ratio and exits non-zero naming what was missing,
and the end of its log stands in the results file instead of its tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"


@dataclass(frozen=True)
class Bench:
    name: str
    what: str
    args: tuple[str, ...]
    quick: tuple[str, ...]
    limit_s: float  # the default run's time limit; --quick runs get a third of it

    @property
    def script(self) -> Path:
        return BENCH / f"{self.name}.py"


BENCHES = (
    Bench("icmp_sweep", "ICMP sweep: weibao's engine vs fping", ("--hosts", "1000", "--repeat", "3"),
          ("--hosts", "300", "--repeat", "1"), 240),
    Bench("snmp_poll", "SNMP polling: weibao vs prometheus-snmp-exporter", ("--devices", "1000", "--rounds", "3"),
          ("--devices", "300", "--rounds", "2", "--skip-hlapi", "--skip-pysnmp"), 420),
    Bench("ingest", "collector ingest over HTTP vs raw SQLite / VictoriaMetrics", ("--samples", "200000"),
          ("--samples", "50000"), 300),
    Bench("tls", "collector ingest over HTTPS vs HTTP, same batches, same run",
          ("--samples", "200000", "--rounds", "3"),
          ("--samples", "50000", "--rounds", "2", "--connections", "50"), 300),
    Bench("contract", "contract engine: rule evaluation and fault detection latency",
          ("--devices", "5000", "--rounds", "5", "--trials", "2"),
          ("--devices", "1000", "--rounds", "3", "--trials", "1"), 300),
    Bench("chain", "contract engine: devices going down flat vs as chains of the deepest depends_on allowed",
          ("--chains", "12", "--rounds", "3"), ("--chains", "6", "--rounds", "2"), 300),
    Bench("console", "web console: overview, ticket list, device page with 1,000 devices and 10,000 tickets",
          ("--devices", "1000", "--tickets", "10000", "--requests", "25"),
          ("--devices", "300", "--tickets", "3000", "--requests", "10"), 300),
    Bench("reports", "monthly report: JSON build, HTML, PDF, XLSX of 100 to 1,000 devices",
          ("--devices", "100,300,1000"), ("--devices", "100,300"), 900),
    Bench("ha", "collector replicas: engine takeover after SIGKILL of the leader, ingest over 1-3 replicas",
          ("--trials", "5", "--samples", "200000"), ("--trials", "2", "--samples", "50000"), 420),
    Bench("agent_memory", "resident memory: agent and collector vs prometheus-snmp-exporter",
          ("--devices", "1000,5000", "--rounds", "3"), ("--devices", "500", "--rounds", "2", "--max-s", "60"), 420),
)


def supported(script: Path, args: tuple[str, ...]) -> tuple[str, ...]:
    """Only the options the script's --help lists (a benchmark still being written may lack some)."""
    try:
        text = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, check=False).stdout
    except subprocess.TimeoutExpired:
        return ()
    out: list[str] = []
    skip = False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a.startswith("--") and a not in text:
            skip = i + 1 < len(args) and not args[i + 1].startswith("--")
            continue
        out.append(a)
    return tuple(out)


@dataclass(frozen=True)
class Outcome:
    bench: Bench
    argv: tuple[str, ...]
    status: str
    seconds: float
    stdout: str


def run(bench: Bench, quick: bool) -> Outcome:
    args = supported(bench.script, bench.quick if quick else bench.args)
    limit = bench.limit_s / 3 if quick else bench.limit_s
    argv = (sys.executable, str(bench.script.relative_to(ROOT)), *args)
    log = RESULTS / f"{bench.name}.log"
    print(f"== {bench.name}: {' '.join(argv[1:])} (limit {limit:.0f} s)", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    with log.open("w", encoding="utf-8") as err:
        # its own session: on timeout the whole group it started (peers included) is stopped by its id
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
        try:
            stdout, _ = proc.communicate(timeout=limit)
            status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                stdout, _ = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                stdout, _ = proc.communicate()
            status = f"stopped after {limit:.0f} s"
    seconds = time.monotonic() - t0
    if status != "ok":
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        stdout = stdout + "\n```\n" + "\n".join(tail) + "\n```\n"
    print(f"   {status} in {seconds:.0f} s", file=sys.stderr, flush=True)
    return Outcome(bench, argv, status, seconds, stdout)


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                               timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def report(outcomes: list[Outcome], quick: bool, load: tuple[float, float]) -> str:
    head = [
        "# weibao benchmarks",
        "",
        f"Run {datetime.now().astimezone().isoformat(timespec='seconds')} on {platform.node() or 'this host'}: "
        f"{os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}, "
        f"commit {commit()}, {'quick' if quick else 'default'} sizes; load average {load[0]:.2f} at the start, "
        f"{load[1]:.2f} at the end. Each table compares weibao with its peer measured in the same run: read the "
        "ratios, not the absolute numbers.",
        "",
    ]
    body: list[str] = []
    for o in outcomes:
        body += [f"## {o.bench.name}: {o.bench.what}", "",
                 f"`{' '.join(('.venv/bin/python', *o.argv[1:]))}` — {o.status}, {o.seconds:.0f} s", "",
                 o.stdout.strip(), ""]
    return "\n".join(head + body)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes in all)")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args()
    if args.list:
        for b in BENCHES:
            print(f"{b.name:<14} {b.what}")
        return 0
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in {b.name for b in BENCHES}]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}; see --list")
    chosen = [b for b in BENCHES if not names or b.name in names]
    RESULTS.mkdir(exist_ok=True)
    start_load = os.getloadavg()[0]
    outcomes: list[Outcome] = []
    for b in chosen:
        if not b.script.exists():
            print(f"== {b.name}: {b.script.name} is not there, skipped", file=sys.stderr)
            continue
        outcomes.append(run(b, args.quick))
    text = report(outcomes, args.quick, (start_load, os.getloadavg()[0]))
    (RESULTS / "latest.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"\n(written to {(RESULTS / 'latest.md').relative_to(ROOT)})", file=sys.stderr)
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
