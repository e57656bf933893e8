"""Ingest throughput, end to end over HTTP, against the raw limit of each backend; one command:

    .venv/bin/python bench/ingest.py [--samples 500000] [--batch 10000] [--clients 2]

Starts the real collector (uvicorn subprocess) with the SQLite backend, then with VictoriaMetrics
(Debian's victoria-metrics, started here on loopback), sends the same pre-encoded batches, and compares
with writing the same rows straight into SQLite (executemany, one transaction per batch) and the same
points straight into VictoriaMetrics' /api/v2/write as line protocol. Prints a table and the collector's
resident memory. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.peers import victoria  # noqa: E402
from tests.peers.collector import CollectorPeer, run_collector  # noqa: E402
from weibao.collector.storage import PreparedSamples  # noqa: E402
from weibao.collector.storage.influx import to_lines  # noqa: E402
from weibao.collector.storage.sqlite import INSERT, SCHEMA  # noqa: E402

AGENT = "bench-site"
METRICS = ("up", "icmp.rtt_ms", "icmp.loss_pct", "cpu.util_pct", "mem.util_pct")
IFACES = 20  # if.in_bps per interface: labelled series
PER_DEVICE = len(METRICS) + IFACES


def _series(devices: int) -> list[tuple[str, str, dict[str, str]]]:
    out: list[tuple[str, str, dict[str, str]]] = []
    for d in range(devices):
        name = f"dev-{d:04d}"
        out += [(name, m, {}) for m in METRICS]
        out += [(name, "if.in_bps", {"ifName": f"Gi0/{i}"}) for i in range(IFACES)]
    return out


def make_batches(total: int, per_batch: int, devices: int,
                 rounds: int = 2) -> list[list[tuple[str, str, dict[str, str], int, float]]]:
    """Rounds of one sample per series, 10 s apart, cut into batches of ``rounds`` samples per series:
    (device, metric, labels, ts_ms, value)."""
    series = _series(devices)[:max(1, per_batch // rounds)]
    # a day ago, on the hour: the collector refuses samples older than its raw retention
    start = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    rows: list[tuple[str, str, dict[str, str], int, float]] = []
    n = 0
    while len(rows) < total:
        ts = round((start + timedelta(seconds=10 * n)).timestamp() * 1000)
        rows += [(d, m, lab, ts, float((i * 7 + n) % 1000) / 10) for i, (d, m, lab) in enumerate(series)]
        n += 1
    rows = rows[:total]
    return [rows[i:i + per_batch] for i in range(0, len(rows), per_batch)]


def encode(batch: list[tuple[str, str, dict[str, str], int, float]]) -> bytes:
    tz = datetime.now().astimezone().tzinfo  # offsets other than UTC on purpose: the collector converts
    samples = [{"device": d, "metric": m, "value": v,
                "ts": datetime.fromtimestamp(ts / 1000, tz).isoformat(timespec="milliseconds"), "labels": lab}
               for d, m, lab, ts, v in batch]
    return json.dumps({"batch_id": str(uuid.uuid4()), "agent": AGENT, "samples": samples, "events": []}).encode()


def prepared(batch: list[tuple[str, str, dict[str, str], int, float]]) -> PreparedSamples:
    series: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    labels: dict[str, dict[str, str]] = {}
    for d, m, lab, ts, v in batch:
        lk = json.dumps(lab, sort_keys=True, separators=(",", ":"))
        labels[lk] = lab
        series.setdefault((d, m, lk), []).append((ts, v))
    return PreparedSamples(series, labels, len(batch))


def rss_kib(pid: int) -> tuple[int, int]:
    """Resident and peak resident memory of ``pid`` plus its children (uvicorn's workers), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    vals = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
            if line.startswith(("VmRSS", "VmHWM"))}
    rss, hwm = vals["VmRSS"], vals["VmHWM"]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        c_rss, c_hwm = rss_kib(int(child))
        rss, hwm = rss + c_rss, hwm + c_hwm
    return rss, hwm


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` plus its children (uvicorn's workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        total += cpu_s(int(child))
    return total


def post_all(peer: CollectorPeer, token: str, bodies: list[bytes], clients: int) -> float:
    """Seconds to send ``bodies`` with ``clients`` senders, each on one kept-alive connection (as an agent)."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    errors: list[str] = []

    def worker() -> None:
        with httpx.Client(base_url=peer.url, headers={"Authorization": f"Bearer {token}",
                                                        "Content-Type": "application/json"}, timeout=120,
                          verify=peer.verify) as h:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                r = h.post("/api/v1/ingest", content=body)
                if r.status_code != 200 or r.json()["duplicate"]:
                    errors.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"ingest failed: {errors[:3]}")
    return elapsed


def register(peer: CollectorPeer, token: str, devices: int) -> None:
    reg = {"site": "bench", "agent": AGENT, "devices": [
        {"name": f"dev-{d:04d}", "address": "127.0.0.1", "kind": "switch", "category": "business"}
        for d in range(devices)]}
    r = httpx.put(f"{peer.url}/api/v1/inventory", json=reg, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                  verify=peer.verify)
    r.raise_for_status()


def via_collector(work: Path, config: dict[str, object], bodies: list[bytes], devices: int,
                  clients: int) -> tuple[float, float, int, int]:
    """Seconds to send ``bodies[2:]``, the collector's CPU seconds meanwhile, its memory."""
    with run_collector(work, config) as peer:
        token = peer.token(AGENT)
        register(peer, token, devices)
        post_all(peer, token, bodies[:2], clients)  # warm-up (series ids, connections), not counted
        cpu0 = cpu_s(peer.proc.pid)
        elapsed = post_all(peer, token, bodies[2:], clients)
        cpu = cpu_s(peer.proc.pid) - cpu0
        rss, hwm = rss_kib(peer.proc.pid)
    return elapsed, cpu, rss, hwm


def raw_sqlite(path: Path, batches: list[PreparedSamples]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for stmt in SCHEMA:
        conn.execute(stmt)
    ids: dict[tuple[str, str, str], int] = {}
    for b in batches:
        for key in b.series:
            if key not in ids:
                ids[key] = int(conn.execute("INSERT INTO ts_series (device, metric, labels) VALUES (?, ?, ?)"
                                            " RETURNING id", key).fetchone()[0])
    rows = [[(ids[k], ts, v) for k, pts in b.series.items() for ts, v in pts] for b in batches]
    t0 = time.perf_counter()
    for r in rows:
        conn.execute("BEGIN")
        conn.executemany(INSERT, r)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def raw_victoria(url: str, batches: list[PreparedSamples]) -> float:
    bodies = ["\n".join(to_lines(b)).encode() for b in batches]
    with httpx.Client(timeout=120) as h:
        t0 = time.perf_counter()
        for body in bodies:
            h.post(f"{url}/api/v2/write", params={"bucket": "weibao", "org": "weibao", "precision": "ms"},
                   content=body).raise_for_status()
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=500_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--clients", type=int, default=2, help="concurrent senders per collector worker")
    ap.add_argument("--rounds", type=int, default=2,
                    help="samples per series in one batch (1: the most rollup rows per sample)")
    ap.add_argument("--backends", default="sqlite,victoria",
                    help="comma-separated: sqlite, victoria (the collector rows and the raw row of each)")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts to measure")
    args = ap.parse_args()
    backends = set(args.backends.split(","))
    worker_counts = [int(w) for w in args.workers.split(",")]

    # enough series that one batch holds exactly ``rounds`` samples of each
    args.devices = max(args.devices, -(-args.batch // (args.rounds * PER_DEVICE)))
    batches = make_batches(args.samples + 2 * args.batch, args.batch, args.devices, args.rounds)
    bodies = [encode(b) for b in batches]
    timed = [prepared(b) for b in batches[2:]]
    n = sum(len(b) for b in batches[2:])
    results: list[tuple[str, float, float]] = []  # path, samples/s, collector CPU seconds
    memory: list[tuple[str, int, int]] = []
    with tempfile.TemporaryDirectory(prefix="weibao-bench-") as tmp:
        work = Path(tmp)
        for workers in worker_counts if "sqlite" in backends else []:
            (work / f"sqlite-{workers}").mkdir()
            t, cpu, rss, hwm = via_collector(work / f"sqlite-{workers}", {"workers": workers}, bodies,
                                             args.devices, args.clients * workers)
            results.append((f"collector HTTP -> SQLite, {workers} worker(s)", n / t, cpu))
            memory.append((f"SQLite, {workers} worker(s)", rss, hwm))
        if "sqlite" in backends:
            results.append(("raw executemany -> SQLite", n / raw_sqlite(work / "raw.db", timed), 0.0))
        if "victoria" not in backends:
            pass
        elif victoria.available():
            for workers in worker_counts:
                with victoria.run_victoria(work / f"vm-{workers}") as vm:
                    (work / f"influx-{workers}").mkdir()
                    cfg = {"workers": workers, "tsdb": {"backend": "influxdb", "influxdb": {
                        "url": vm.url, "org": "weibao", "bucket": "weibao"}}}
                    t, cpu, rss, hwm = via_collector(work / f"influx-{workers}", cfg, bodies, args.devices,
                                                     args.clients * workers)
                    results.append((f"collector HTTP -> VictoriaMetrics, {workers} worker(s)", n / t, cpu))
                    memory.append((f"VictoriaMetrics, {workers} worker(s)", rss, hwm))
            with victoria.run_victoria(work / "vm-raw") as vm:
                results.append(("raw line protocol -> VictoriaMetrics", n / raw_victoria(vm.url, timed), 0.0))
        else:
            print("victoria-metrics not installed: its rows are skipped", file=sys.stderr)

    print(f"\n{n:,} samples in batches of {args.batch:,}, {args.rounds} sample(s) per series per batch "
          f"({args.batch // args.rounds:,} series), "
          f"{args.clients} sender(s) per worker\n")
    # CPU per sample is steadier than samples/s on a shared machine: other load slows the clock, not the work
    print(f"| {'path':<52} | {'samples/s':>11} | {'vs raw':>7} | {'collector CPU us/sample':>23} |")
    print(f"|{'-' * 54}|{'-' * 13}|{'-' * 9}|{'-' * 25}|")
    raw = {("SQLite" if "SQLite" in name else "VictoriaMetrics"): rate for name, rate, _ in results
           if name.startswith("raw")}
    for name, rate, cpu in results:
        backend = "SQLite" if "SQLite" in name else "VictoriaMetrics"
        ratio = "" if name.startswith("raw") or not raw.get(backend) else f"{rate / raw[backend]:.2f}"
        per = f"{cpu / n * 1e6:.1f}" if cpu else ""
        print(f"| {name:<52} | {rate:>11,.0f} | {ratio:>7} | {per:>23} |")
    print()
    for backend, rss, hwm in memory:
        print(f"collector resident memory ({backend}): {rss / 1024:.0f} MiB at the end, "
              f"{hwm / 1024:.0f} MiB peak (all processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
