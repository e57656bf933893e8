"""Soak test: the real agent daemon and collector against the demo's simulated devices, with outages.

The collector is stopped (SIGTERM, and SIGKILL every third time) for 20-60 s at even intervals while the
agent keeps polling; the agent itself is SIGKILLed once mid-run and restarted. At the end the agent
stops gracefully (drains and ships), and the script verifies that every shipped row is stored exactly
once, nothing was dropped or dead-lettered, the ``up``/``icmp.loss_pct`` series have no holes that the
outages of the agent itself or its skipped runs do not explain, and reports RSS of both processes:
sampled every ``--rss-every`` seconds into ``rss.csv``, with the growth per hour of each agent life and
of the collector after their first 30 minutes (a leak shows as a steady slope, warm-up does not).

    .venv/bin/python bench/soak.py --minutes 40 [--collector-restarts K] [--agent-kill-at F] [--out DIR]

Everything runs on loopback; every process started here is stopped on exit or Ctrl-C. Exit status 1
when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import markdown_table, memory  # noqa: E402
from tests.peers.collector import free_port, wait_http  # noqa: E402
from weibao.embedded.demo_site import start_sims, write_site  # noqa: E402

AGENT_NAME = "soak-agent"
ICMP_S, SNMP_S = 5, 15
HOLE_FACTOR = 2.5  # a gap longer than this many intervals is a hole
WATCHED = ("up", "icmp.loss_pct")


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "weibao", *args]


@dataclass
class Proc:
    """A daemon this script runs, restartable, with its log appended across lives."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    lives: int = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        self.lives += 1
        _log(f"{self.name} started (pid {self.proc.pid}, life {self.lives})")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_and_wait(self, sig: signal.Signals, timeout: float = 60.0) -> int | None:
        if not self.alive():
            return None if self.proc is None else self.proc.returncode
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _log(f"{self.name} did not exit {timeout:.0f} s after {sig.name}: SIGKILL")
            self.proc.kill()
            rc = self.proc.wait(10)
        _log(f"{self.name} stopped by {sig.name}: exit {rc}")
        return rc


@dataclass
class Run:
    """What happened during the run, for the checks."""

    collector_outages: list[tuple[float, float, str]] = field(default_factory=list)
    agent_down: list[tuple[float, float]] = field(default_factory=list)
    # last daemon status seen in each agent life (its job counters restart with the process)
    agent_jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    rss: dict[str, int] = field(default_factory=dict)
    # (seconds since start, agent life, agent RSS KiB, collector life, collector RSS KiB)
    rss_trace: list[tuple[float, int, int, int, int]] = field(default_factory=list)
    # (seconds since start, agent life, open file descriptors of the agent)
    fds: list[tuple[float, int, int]] = field(default_factory=list)
    agent_final_rc: int | None = None


def agent_status(data: Path) -> dict[str, Any] | None:
    out = subprocess.run(_cli("agent", "status", "--data", str(data), "--json"), cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    if out.returncode != 0:
        return None
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def set_schedule(inventory: Path) -> None:
    """Short schedules: the soak wants many rounds, not the demo's seconds-fast ones."""
    text = inventory.read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    doc["defaults"]["schedule"] = {**doc["defaults"].get("schedule", {}), "icmp_s": ICMP_S, "snmp_s": SNMP_S}
    inventory.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def plan(minutes: float, restarts: int, kill_at: float | None = None,
         span: float = 1.0) -> tuple[list[tuple[float, float, signal.Signals]], float]:
    """Collector outages (start s, length s, signal) at even intervals, and when to kill the agent.

    ``kill_at`` (a fraction of the run) places the agent's SIGKILL; by default it falls half-way, between
    two outages. ``span`` < 1 keeps the outages in that first part of the run, so the rest shows both
    processes running long without interruption (for their memory).
    """
    total = minutes * 60
    outages = []
    for i in range(restarts):
        at = total * span * (i + 1) / (restarts + 1.5)
        length = 20 + (i * 17) % 41
        sig = signal.SIGKILL if i % 3 == 1 or (restarts == 1) else signal.SIGTERM
        outages.append((at, float(length), sig))
    if kill_at is not None:
        return outages, total * kill_at
    # the agent's kill falls between two outages, while the collector is up
    agent_kill = total * 0.5 if restarts < 2 else (outages[restarts // 2 - 1][0] + outages[restarts // 2][0]) / 2 + 5
    return outages, agent_kill


def _db_files(data: Path) -> list[Path]:
    return [p for p in (data / "state.db", data / "samples.db") if p.exists()]


def verify(data: Path, agent_data: Path, run: Run, t0_ms: int) -> tuple[list[list[str]], bool]:
    """All checks as table rows (check, value, verdict) and whether all passed."""
    rows: list[list[str]] = []
    ok = True

    def check(name: str, value: object, passed: bool) -> None:
        nonlocal ok
        ok &= passed
        rows.append([name, str(value), "ok" if passed else "FAIL"])

    status = agent_status(agent_data) or {}
    counters: dict[str, int] = status.get("counters", {})
    shipped = int(counters.get("shipped_rows", 0))
    state = sqlite3.connect(f"file:{data / 'state.db'}?mode=ro", uri=True)
    b_samples, b_events, n_batches = state.execute(
        "SELECT COALESCE(SUM(samples),0), COALESCE(SUM(events),0), COUNT(*) FROM batches WHERE agent = ?",
        (AGENT_NAME,)).fetchone()
    n_events = state.execute("SELECT COUNT(*) FROM events WHERE agent = ?", (AGENT_NAME,)).fetchone()[0]
    dup_events = state.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE agent = ? GROUP BY device, kind, ts_ms, data "
        "HAVING COUNT(*) > 1)", (AGENT_NAME,)).fetchone()[0]
    sample_db = next((p for p in _db_files(data) if sqlite3.connect(f"file:{p}?mode=ro", uri=True).execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'ts_samples'").fetchone()), None)
    if sample_db is None:
        check("raw samples table found", "none", False)
        return rows, False
    sdb = sqlite3.connect(f"file:{sample_db}?mode=ro", uri=True)
    n_samples = sdb.execute("SELECT COUNT(*) FROM ts_samples").fetchone()[0]
    dup_samples = sdb.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM ts_samples s JOIN ts_series r ON r.id = s.series_id "
        "GROUP BY r.device, r.metric, r.labels, s.ts_ms HAVING COUNT(*) > 1)").fetchone()[0]
    dup_series = sdb.execute("SELECT COUNT(*) FROM (SELECT 1 FROM ts_series GROUP BY device, metric, labels "
                             "HAVING COUNT(*) > 1)").fetchone()[0]
    spool = status.get("spool", {})
    check("agent spool rows at end", str(spool.get("rows")), spool.get("rows") == 0)
    check("agent shipped rows (batches)", f"{shipped} ({counters.get('shipped_batches', 0)})", shipped > 0)
    check("collector batches from agent", n_batches, n_batches == counters.get("shipped_batches", 0))
    check("stored samples + events", f"{n_samples} + {n_events} = {n_samples + n_events}",
          n_samples + n_events == shipped)
    check("batch totals samples + events", f"{b_samples} + {b_events}",
          b_samples == n_samples and b_events == n_events)
    check("duplicate (device, metric, labels, ts)", dup_samples, dup_samples == 0)
    check("duplicate series keys", dup_series, dup_series == 0)
    check("duplicate events (device, kind, ts, data)", dup_events, dup_events == 0)
    check("dead letters", len(status.get("dead_letters", [])), not status.get("dead_letters"))
    for name in ("dead_rows", "dropped_full", "refused_invalid"):
        check(f"agent counter {name}", counters.get(name, 0), counters.get(name, 0) == 0)

    skipped = sum(int(js.get("skipped", 0)) for life in run.agent_jobs.values() for js in life.values())
    timeouts = sum(int(js.get("timeouts", 0)) for life in run.agent_jobs.values() for js in life.values())
    rows.append(["agent skipped runs / timed-out runs (all lives)", f"{skipped} / {timeouts}", "info"])
    down_ms = [(int(a * 1000), int(b * 1000)) for a, b in run.agent_down]
    holes, explained, worst = 0, 0, (0.0, "")
    per_series = sdb.execute(
        "SELECT r.device, r.metric, r.labels, s.ts_ms FROM ts_samples s JOIN ts_series r ON r.id = s.series_id "
        "WHERE r.metric IN (?, ?) AND r.device != '' ORDER BY r.id, s.ts_ms", WATCHED).fetchall()
    series: dict[tuple[str, str, str], list[int]] = {}
    for device, metric, labels, ts in per_series:
        series.setdefault((device, metric, labels), []).append(int(ts))
    for (device, metric, _labels), stamps in sorted(series.items()):
        stamps = [t for t in stamps if t >= t0_ms]
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        if not gaps:
            continue
        interval = sorted(gaps)[len(gaps) // 2]
        for a, b in itertools.pairwise(stamps):
            gap = b - a
            if gap <= HOLE_FACTOR * interval:
                continue
            if any(a <= d1 and b >= d0 for d0, d1 in down_ms):
                explained += 1
                continue
            holes += 1
            if gap / 1000 > worst[0]:
                worst = (gap / 1000, f"{device} {metric} at {time.strftime('%H:%M:%S', time.localtime(a / 1000))}")
    rows.append([f"series {'/'.join(WATCHED)} watched", str(len(series)), "info"])
    rows.append(["holes during the agent's own downtime", str(explained), "info"])
    # a run skipped (the previous one still going) or stopped at its deadline leaves a gap the agent counts
    unexplained = holes - min(holes, skipped + timeouts)
    check(f"holes > {HOLE_FACTOR} intervals, not explained by skipped or timed-out runs",
          f"{holes} holes, {unexplained} unexplained" + (f"; longest {worst[0]:.0f} s ({worst[1]})" if holes else ""),
          unexplained == 0)
    return rows, ok


def run_soak(args: argparse.Namespace) -> int:
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="weibao-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    data, agent_data, site = out / "collector", out / "agent", out / "site"
    for d in (data, agent_data, site):
        d.mkdir(exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    restarts = args.collector_restarts if args.collector_restarts is not None else max(2, int(args.minutes // 4))
    outages, agent_kill_at = plan(args.minutes, restarts, args.agent_kill_at, args.outage_span)
    run = Run()
    _log(f"out {out}; collector {url}; {restarts} collector outages; agent SIGKILL at {agent_kill_at:.0f} s")

    with contextlib.ExitStack() as stack:
        sims = start_sims(stack)
        inventory = write_site(sims, site, warranty_soon="2026-12-31")
        set_schedule(inventory)
        issued = subprocess.run(_cli("token", "issue", AGENT_NAME, "--data", str(data)), cwd=REPO,
                                capture_output=True, text=True, timeout=120, check=True)
        token_file = site / "agent.token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(issued.stdout.strip() + "\n")
        collector = Proc("collector", _cli("-v", "collector", "--data", str(data), "--listen", f"127.0.0.1:{port}"),
                         out / "collector.log")
        agent = Proc("agent", _cli("-v", "agent", "--inventory", str(inventory), "--collector", url,
                                   "--token-file", str(token_file), "--data", str(agent_data),
                                   "--name", AGENT_NAME, "--no-traps"), out / "agent.log")
        for p in (agent, collector):
            stack.callback(p.signal_and_wait, signal.SIGKILL, 10.0)
        collector.start()
        wait_http(f"{url}/healthz", collector.proc, timeout=60)
        t0 = time.time()
        agent.start()
        deadline = t0 + args.minutes * 60
        pending = list(outages)
        agent_killed = False
        next_status = t0 + 30
        next_rss = t0 + 60
        rss_csv = (out / "rss.csv").open("w", encoding="utf-8")
        stack.callback(rss_csv.close)
        rss_csv.write("elapsed_s,agent_life,agent_rss_kib,collector_life,collector_rss_kib,agent_fds\n")
        while time.time() < deadline:
            now = time.time()
            elapsed = now - t0
            if "rss_start_agent_kib" not in run.rss and elapsed >= 60:
                run.rss["rss_start_agent_kib"] = memory(agent.pid, tree=True).rss_kib
                run.rss["rss_start_collector_kib"] = memory(collector.pid, tree=True).rss_kib
            if not agent.alive():
                rc = agent.proc.returncode if agent.proc else None
                raise RuntimeError(f"agent exited on its own ({rc}); see {agent.log_path}")
            if now >= next_rss and agent.alive() and collector.alive():
                point = (round(elapsed), agent.lives, memory(agent.pid, tree=True).rss_kib, collector.lives,
                         memory(collector.pid, tree=True).rss_kib)
                run.rss_trace.append(point)
                run.fds.append((point[0], agent.lives, open_files(agent.pid)))
                rss_csv.write(",".join(map(str, (*point, run.fds[-1][2]))) + "\n")
                rss_csv.flush()
                next_rss = now + args.rss_every
            if now >= next_status:
                st = agent_status(agent_data)
                if st and st.get("daemon"):
                    run.agent_jobs[agent.lives] = st["daemon"].get("jobs") or {}
                    sp = st["spool"]
                    _log(f"t={elapsed:.0f}s spool {sp['rows']} rows, shipped {st['counters'].get('shipped_rows', 0)}, "
                         f"last ship {(st.get('last_ship') or {}).get('outcome')}")
                next_status = now + 30
            if pending and elapsed >= pending[0][0]:
                _at, length, sig = pending.pop(0)
                start = time.time()
                collector.signal_and_wait(sig)
                _log(f"collector down for {length:.0f} s")
                while time.time() < start + length and time.time() < deadline:
                    time.sleep(1)
                collector.start()
                wait_http(f"{url}/healthz", collector.proc, timeout=60)
                run.collector_outages.append((start, time.time(), sig.name))
                continue
            if not agent_killed and elapsed >= agent_kill_at:
                st = agent_status(agent_data)
                if st and st.get("daemon"):
                    run.agent_jobs[agent.lives] = st["daemon"].get("jobs") or {}
                down = time.time()
                agent.signal_and_wait(signal.SIGKILL)
                time.sleep(5)
                agent.start()
                time.sleep(10)  # its first rounds
                run.agent_down.append((down, time.time()))
                agent_killed = True
                continue
            time.sleep(1)

        run.rss["rss_end_agent_kib"] = memory(agent.pid, tree=True).rss_kib
        run.rss["rss_end_collector_kib"] = memory(collector.pid, tree=True).rss_kib
        run.rss["hwm_end_agent_kib"] = memory(agent.pid, tree=True).hwm_kib
        st = agent_status(agent_data)
        if st and st.get("daemon"):
            run.agent_jobs[agent.lives] = st["daemon"].get("jobs") or {}
        run.agent_final_rc = agent.signal_and_wait(signal.SIGTERM, timeout=120)
        spool_deadline = time.time() + 60
        while time.time() < spool_deadline:
            st = agent_status(agent_data)
            if st and st["spool"]["rows"] == 0:
                break
            time.sleep(2)
        st = agent_status(agent_data)
        if st and st.get("daemon"):
            run.agent_jobs[agent.lives] = st["daemon"].get("jobs") or {}
        collector.signal_and_wait(signal.SIGTERM)

    (out / "soak-run.json").write_text(json.dumps({"t0": t0, "agent_down": run.agent_down,
                                                   "outages": run.collector_outages, "jobs": run.agent_jobs,
                                                   "rss": run.rss, "rss_trace": run.rss_trace}),
                                        encoding="utf-8")
    rows, ok = verify(data, agent_data, run, int(t0 * 1000))
    outs = ", ".join(f"{b - a:.0f} s {s}" for a, b, s in run.collector_outages)
    head = [["minutes run", f"{(time.time() - t0) / 60:.1f}", "info"],
            ["collector outages", f"{len(run.collector_outages)}: {outs}", "info"],
            ["agent SIGKILL + restart (down)", f"{len(run.agent_down)} ("
             + ", ".join(f"{b - a:.0f} s" for a, b in run.agent_down) + ")", "info"],
            ["agent exit after SIGTERM", str(run.agent_final_rc), "ok" if run.agent_final_rc == 0 else "FAIL"]]
    ok &= run.agent_final_rc == 0
    for who in ("agent", "collector"):
        a, b = run.rss.get(f"rss_start_{who}_kib", 0), run.rss.get(f"rss_end_{who}_kib", 0)
        head.append([f"{who} RSS at 60 s -> end (KiB)", f"{a} -> {b} ({(b - a) / 1024:+.1f} MiB)", "info"])
    for label, value in rss_growth(run.rss_trace):
        head.append([label, value, "info"])
    for life in sorted({life for _, life, _ in run.fds}):
        counts = [n for _, lf, n in run.fds if lf == life]
        head.append([f"agent life {life} open files: first -> last sample (max)",
                     f"{counts[0]} -> {counts[-1]} ({max(counts)})", "info"])
    for life, jobs in sorted(run.agent_jobs.items()):
        head.append([f"agent life {life} jobs: runs/skipped/timeouts/failures",
                     "; ".join(f"{n} {j.get('runs')}/{j.get('skipped')}/{j.get('timeouts')}/{j.get('failures')}"
                               for n, j in sorted(jobs.items())), "info"])
    table = markdown_table(["check", "value", "verdict"], head + rows, left=(0, 1, 2))
    print(table, flush=True)
    (out / "soak-summary.md").write_text(table + "\n", encoding="utf-8")
    _log(f"{'PASS' if ok else 'FAIL'}; logs and data in {out}")
    return 0 if ok else 1


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _slope_mib_per_h(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, KiB) points, in MiB per hour."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if not sxx:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / sxx * 3600 / 1024


def rss_growth(trace: list[tuple[float, int, int, int, int]], settle_s: float = 1800) -> list[tuple[str, str]]:
    """RSS growth of each process life once it has run ``settle_s``: a leak is a slope that does not flatten."""
    lines = []
    for who, life_i, rss_i in (("agent", 1, 2), ("collector", 3, 4)):
        lives: dict[int, list[tuple[float, int]]] = {}
        for point in trace:
            lives.setdefault(int(point[life_i]), []).append((point[0], int(point[rss_i])))
        for life, pts in sorted(lives.items()):
            start = pts[0][0]
            later = [(t, kib) for t, kib in pts if t - start >= settle_s]
            if len(later) < 3:
                continue
            half = later[len(later) // 2:]
            lines.append((f"{who} life {life}: RSS after {settle_s / 60:.0f} min -> end, slope (2nd half)",
                          f"{later[0][1] / 1024:.1f} -> {later[-1][1] / 1024:.1f} MiB over "
                          f"{(later[-1][0] - later[0][0]) / 3600:.1f} h, {_slope_mib_per_h(later):+.2f} MiB/h "
                          f"({_slope_mib_per_h(half):+.2f} MiB/h)"))
    return lines


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--collector-restarts", type=int, default=None,
                        help="collector outages during the run (default: one per 4 minutes, at least 2)")
    parser.add_argument("--agent-kill-at", type=float, default=None, metavar="F",
                        help="when to SIGKILL the agent, as a fraction of the run (default: half-way)")
    parser.add_argument("--outage-span", type=float, default=1.0, metavar="F",
                        help="collector outages fall within this first fraction of the run (default: all of it)")
    parser.add_argument("--rss-every", type=float, default=300.0, help="seconds between RSS samples (rss.csv)")
    parser.add_argument("--out", type=Path, default=None, help="logs and data (default: a new temporary folder)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_term)
    try:
        return run_soak(args)
    except KeyboardInterrupt:
        _log("interrupted: processes stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
