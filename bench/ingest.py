"""Ingest throughput, end to end over HTTP, against the raw limit of each backend; one command:

    .venv/bin/python bench/ingest.py [--samples 500000] [--batch 10000] [--clients 2] [--workers 1,2]

Starts the real collector (uvicorn subprocess) with the SQLite backend, then with VictoriaMetrics
(Debian's victoria-metrics, started here on loopback), sends the same pre-encoded batches, and compares
with writing the same rows straight into SQLite (executemany, one transaction per batch) and the same
points straight into VictoriaMetrics' /api/v2/write as line protocol.

Both sides get the same number of senders: the collector with W workers is sent to by ``clients`` x W
threads (one HTTP connection each), and each raw baseline is measured with that many threads too (one
SQLite connection or one HTTP connection each; SQLite takes one writer at a time, so the raw SQLite
writers take turns under a lock, as the collector's workers do, instead of spinning on SQLite's busy
handler). The raw SQLite writers use the collector's own connection settings (WAL, synchronous=FULL:
acknowledged samples survive a power cut); the earlier baseline (one connection, synchronous=NORMAL) is
measured too, for comparison with earlier results.

Before any rate is printed, what was stored is read back and compared with what was sent, sample by
sample (device, metric, labels, time, value): from the collector's raw store (its SQLite file, or
VictoriaMetrics' /api/v1/export) and from its rollups (the count of every 5-minute and 1-hour bucket of
every series), and from each raw baseline's store. A missing, extra or changed sample stops the benchmark
with a non-zero exit. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import cpu_seconds, markdown_table, memory, ratio, require_complete  # noqa: E402
from tests.peers import victoria  # noqa: E402
from tests.peers.collector import CollectorPeer, run_collector  # noqa: E402
from weibao.collector.rollup import RESOLUTIONS  # noqa: E402
from weibao.collector.storage import PreparedSamples  # noqa: E402
from weibao.collector.storage.influx import to_lines  # noqa: E402
from weibao.collector.storage.sqlite import INSERT, SCHEMA, open_sqlite  # noqa: E402

AGENT = "bench-site"
METRICS = ("up", "icmp.rtt_ms", "icmp.loss_pct", "cpu.util_pct", "mem.util_pct")
IFACES = 20  # if.in_bps per interface: labelled series
PER_DEVICE = len(METRICS) + IFACES
READ_BACK_S = 60.0  # how long VictoriaMetrics may take to show what it acknowledged

Raw = tuple[str, str, dict[str, str], int, float]  # device, metric, labels, ts_ms, value
Labels = tuple[tuple[str, str], ...]
Point = tuple[str, str, Labels, int, float]  # a sample as compared: labels sorted, value rounded
Bucket = tuple[str, str, Labels, int, int]  # device, metric, labels, resolution s, bucket start ms
K = TypeVar("K", Point, Bucket)


def _series(devices: int) -> list[tuple[str, str, dict[str, str]]]:
    out: list[tuple[str, str, dict[str, str]]] = []
    for d in range(devices):
        name = f"dev-{d:04d}"
        out += [(name, m, {}) for m in METRICS]
        out += [(name, "if.in_bps", {"ifName": f"Gi0/{i}"}) for i in range(IFACES)]
    return out


def make_batches(total: int, per_batch: int, devices: int, rounds: int = 2) -> list[list[Raw]]:
    """Rounds of one sample per series, 10 s apart, cut into batches of ``rounds`` samples per series:
    (device, metric, labels, ts_ms, value)."""
    series = _series(devices)[:max(1, per_batch // rounds)]
    # a day ago, on the hour: the collector refuses samples older than its raw retention
    start = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    rows: list[Raw] = []
    n = 0
    while len(rows) < total:
        ts = round((start + timedelta(seconds=10 * n)).timestamp() * 1000)
        rows += [(d, m, lab, ts, float((i * 7 + n) % 1000) / 10) for i, (d, m, lab) in enumerate(series)]
        n += 1
    rows = rows[:total]
    return [rows[i:i + per_batch] for i in range(0, len(rows), per_batch)]


def encode(batch: list[Raw]) -> bytes:
    tz = datetime.now().astimezone().tzinfo  # offsets other than UTC on purpose: the collector converts
    samples = [{"device": d, "metric": m, "value": v,
                "ts": datetime.fromtimestamp(ts / 1000, tz).isoformat(timespec="milliseconds"), "labels": lab}
               for d, m, lab, ts, v in batch]
    return json.dumps({"batch_id": str(uuid.uuid4()), "agent": AGENT, "samples": samples, "events": []}).encode()


def prepared(batch: list[Raw]) -> PreparedSamples:
    series: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    labels: dict[str, dict[str, str]] = {}
    for d, m, lab, ts, v in batch:
        lk = json.dumps(lab, sort_keys=True, separators=(",", ":"))
        labels[lk] = lab
        series.setdefault((d, m, lk), []).append((ts, v))
    return PreparedSamples(series, labels, len(batch))


# ---- what was sent, and what a store holds, in comparable form

def point(device: str, metric: str, labels: dict[str, str], ts_ms: int, value: float) -> Point:
    # rounded: a store may keep a value in its own decimal form (VictoriaMetrics does)
    return device, metric, tuple(sorted(labels.items())), ts_ms, round(value, 6)


def sent_points(batches: Iterable[list[Raw]]) -> Counter[Point]:
    return Counter(point(*r) for b in batches for r in b)


def sent_buckets(batches: Iterable[list[Raw]]) -> Counter[Bucket]:
    """How many samples each rollup bucket of each series must count."""
    out: Counter[Bucket] = Counter()
    for b in batches:
        for d, m, lab, ts, _v in b:
            items = tuple(sorted(lab.items()))
            for res in RESOLUTIONS:
                out[(d, m, items, res, ts - ts % (res * 1000))] += 1
    return out


def sqlite_points(path: Path) -> Counter[Point]:
    """Every raw sample in a SQLite sample store (the collector's state.db or the raw baseline's file)."""
    conn = sqlite3.connect(path)
    try:
        return Counter(point(d, m, json.loads(lab), ts, v) for d, m, lab, ts, v in conn.execute(
            "SELECT s.device, s.metric, s.labels, t.ts_ms, t.value FROM ts_samples t"
            " JOIN ts_series s ON s.id = t.series_id"))
    finally:
        conn.close()


def rollup_counts(path: Path) -> Counter[Bucket]:
    """The count of every rollup bucket of every series in the collector's state.db."""
    conn = sqlite3.connect(path)
    try:
        out: Counter[Bucket] = Counter()
        for d, m, lab, res, bucket, n in conn.execute(
                "SELECT s.device, s.metric, s.labels, r.resolution, r.bucket_ms, r.count FROM rollups r"
                " JOIN series s ON s.id = r.series_id"):
            out[(d, m, tuple(sorted(json.loads(lab).items())), res, bucket)] += n
        return out
    finally:
        conn.close()


def victoria_points(url: str, want: int) -> Counter[Point]:
    """Every point VictoriaMetrics holds (measurement ``metric``, field ``value`` -> ``metric_value``),
    waiting (bounded) until ``want`` are visible: it acknowledges writes before they are searchable."""
    deadline = time.monotonic() + READ_BACK_S
    while True:
        httpx.get(f"{url}/internal/force_flush", timeout=30)
        r = httpx.get(f"{url}/api/v1/export", params={"match[]": '{__name__=~".+"}'}, timeout=120)
        r.raise_for_status()
        got: Counter[Point] = Counter()
        for line in r.text.splitlines():
            if not line.strip():
                continue
            s = json.loads(line)
            tags = dict(s["metric"])
            metric = tags.pop("__name__").removesuffix("_value")
            device = tags.pop("device", "")
            for ts, v in zip(s["timestamps"], s["values"], strict=True):
                got[point(device, metric, tags, int(ts), float(v))] += 1
        if sum(got.values()) >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def difference(label: str, want: Counter[K], got: Counter[K], what: str) -> str | None:
    """One line on how ``got`` differs from ``want``, or None when they are equal."""
    if got == want:
        return None
    lacking, extra = want - got, got - want
    example = next(iter(lacking or extra))
    return (f"{label}: {what}: {sum(lacking.values()):,} of {sum(want.values()):,} missing or changed, "
            f"{sum(extra.values()):,} unexpected (e.g. {'missing' if lacking else 'unexpected'} {example})")


# ---- the two sides

@dataclass(frozen=True)
class Result:
    path: str
    backend: str  # SQLite or VictoriaMetrics
    senders: int
    samples: int
    seconds: float
    cpu_s: float | None = None  # the collector's, all processes
    same: bool = False  # a raw row the collector's rows with as many senders are compared with
    earlier: bool = False  # the raw row earlier results were compared with

    @property
    def raw(self) -> bool:
        return self.same or self.earlier

    @property
    def rate(self) -> float:
        return self.samples / self.seconds


def post_all(peer: CollectorPeer, token: str, bodies: list[bytes], senders: int) -> float:
    """Seconds to send ``bodies`` with ``senders`` senders, each on one kept-alive connection (as an agent)."""
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

    threads = [threading.Thread(target=worker) for _ in range(senders)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    elapsed = time.perf_counter() - t0
    if errors or any(t.is_alive() for t in threads):
        raise SystemExit(f"ingest failed: {errors[:3] or 'a sender did not finish within 600 s'}")
    return elapsed


def register(peer: CollectorPeer, token: str, devices: int) -> None:
    reg = {"site": "bench", "agent": AGENT, "devices": [
        {"name": f"dev-{d:04d}", "address": "127.0.0.1", "kind": "switch", "category": "business"}
        for d in range(devices)]}
    r = httpx.put(f"{peer.url}/api/v1/inventory", json=reg, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                  verify=peer.verify)
    r.raise_for_status()


@dataclass(frozen=True)
class Collected:
    seconds: float  # to send bodies[2:]
    cpu_s: float  # the collector's meanwhile
    rss_kib: int
    hwm_kib: int
    state_db: Path  # the collector's state database, for reading back


def via_collector(work: Path, config: dict[str, object], bodies: list[bytes], devices: int,
                  senders: int) -> Collected:
    """Send every body (the first two as an untimed warm-up) and stop the collector."""
    with run_collector(work, config) as peer:
        token = peer.token(AGENT)
        register(peer, token, devices)
        post_all(peer, token, bodies[:2], senders)  # warm-up (series ids, connections), not counted
        cpu0 = cpu_seconds(peer.proc.pid, tree=True)
        elapsed = post_all(peer, token, bodies[2:], senders)
        cpu = cpu_seconds(peer.proc.pid, tree=True) - cpu0
        mem = memory(peer.proc.pid, tree=True)
        state_db = peer.data_dir / "state.db"
    return Collected(elapsed, cpu, mem.rss_kib, mem.hwm_kib, state_db)


def in_threads(senders: int, items: list[Callable[[], None]]) -> float:
    """Run ``items`` on ``senders`` threads, each taking the next; seconds until all are done."""
    queue = list(reversed(items))
    lock = threading.Lock()
    failed: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                if not queue or failed:
                    return
                item = queue.pop()
            try:
                item()
            except BaseException as exc:  # reported below, after the threads have ended
                failed.append(exc)
                return

    threads = [threading.Thread(target=worker) for _ in range(senders)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    elapsed = time.perf_counter() - t0
    if failed or any(t.is_alive() for t in threads):
        raise SystemExit(f"raw baseline failed: {failed[:1] or 'a writer did not finish within 600 s'}")
    return elapsed


def raw_sqlite(path: Path, batches: list[PreparedSamples], senders: int, *, synchronous: str = "FULL") -> float:
    """Seconds for ``senders`` connections to write ``batches`` (one transaction each, taking turns)."""
    conns = [open_sqlite(path) for _ in range(senders)]  # the collector's settings: WAL, synchronous=FULL
    for c in conns:
        c.execute(f"PRAGMA synchronous={synchronous}")
    for stmt in SCHEMA:
        conns[0].execute(stmt)
    ids: dict[tuple[str, str, str], int] = {}
    for b in batches:
        for key in b.series:
            if key not in ids:
                ids[key] = int(conns[0].execute("INSERT INTO ts_series (device, metric, labels) VALUES (?, ?, ?)"
                                                " RETURNING id", key).fetchone()[0])
    rows = [[(ids[k], ts, v) for k, pts in b.series.items() for ts, v in pts] for b in batches]
    free = list(conns)
    pool, turn = threading.Lock(), threading.Lock()

    def write(r: list[tuple[int, int, float]]) -> Callable[[], None]:
        def go() -> None:
            with pool:
                conn = free.pop()
            try:
                with turn:  # one writer at a time, as SQLite allows
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(INSERT, r)
                    conn.execute("COMMIT")
            finally:
                with pool:
                    free.append(conn)
        return go

    try:
        return in_threads(senders, [write(r) for r in rows])
    finally:
        for c in conns:
            c.close()


def raw_victoria(url: str, batches: list[PreparedSamples], senders: int) -> float:
    bodies = ["\n".join(to_lines(b)).encode() for b in batches]
    clients = [httpx.Client(timeout=120) for _ in range(senders)]
    free = list(clients)
    pool = threading.Lock()

    def write(body: bytes) -> Callable[[], None]:
        def go() -> None:
            with pool:
                h = free.pop()
            try:
                h.post(f"{url}/api/v2/write", params={"bucket": "weibao", "org": "weibao", "precision": "ms"},
                       content=body).raise_for_status()
            finally:
                with pool:
                    free.append(h)
        return go

    try:
        return in_threads(senders, [write(b) for b in bodies])
    finally:
        for h in clients:
            h.close()


# ---- the table

def table(results: list[Result], n: int) -> str:
    same = {(r.backend, r.senders): r.rate for r in results if r.same}
    earlier = {r.backend: r.rate for r in results if r.earlier}
    rows = []
    for r in results:
        vs_same = "" if r.raw else ratio(r.rate, same.get((r.backend, r.senders), 0.0))
        vs_earlier = "" if r.raw else ratio(r.rate, earlier.get(r.backend, 0.0))
        per = "" if r.cpu_s is None else f"{r.cpu_s / n * 1e6:.1f}"
        rows.append((r.path, str(r.senders), f"{r.rate:,.0f}", vs_same, vs_earlier, per))
    return markdown_table(("path", "senders", "samples/s", "vs raw, same senders", "vs earlier raw baseline",
                           "collector CPU µs/sample"), rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--samples", type=int, default=500_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--clients", type=int, default=2, help="concurrent senders per collector worker")
    ap.add_argument("--rounds", type=int, default=2,
                    help="samples per series in one batch (1: the most rollup rows per sample)")
    ap.add_argument("--backends", default="sqlite,victoria",
                    help="comma-separated: sqlite, victoria (the collector rows and the raw rows of each)")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts to measure")
    args = ap.parse_args()
    backends = {b for b in args.backends.split(",") if b}
    worker_counts = [int(w) for w in args.workers.split(",") if w]
    if not backends <= {"sqlite", "victoria"} or not worker_counts or any(not 1 <= w <= 8 for w in worker_counts):
        ap.error("--backends: sqlite, victoria; --workers: counts 1..8")
    if not 1 <= args.clients <= 16 or not 1 <= args.samples <= 5_000_000:
        ap.error("--clients 1..16, --samples 1..5,000,000")

    # enough series that one batch holds exactly ``rounds`` samples of each
    args.devices = max(args.devices, -(-args.batch // (args.rounds * PER_DEVICE)))
    batches = make_batches(args.samples + 2 * args.batch, args.batch, args.devices, args.rounds)
    bodies = [encode(b) for b in batches]
    timed = [prepared(b) for b in batches[2:]]
    n = sum(len(b) for b in batches[2:])
    sender_counts = sorted({args.clients * w for w in worker_counts})
    results: list[Result] = []
    problems: list[str] = []
    memory_lines: list[str] = []

    # What was sent is counted again for each check and dropped after it: hundreds of thousands of
    # long-lived objects in this process would make its garbage collector slow the senders of the next run.
    def check(label: str, points: Counter[Point], sent: list[list[Raw]], state_db: Path | None) -> None:
        if p := difference(label, sent_points(sent), points, "raw samples read back"):
            problems.append(p)
        if state_db is not None and (p := difference(label, sent_buckets(sent), rollup_counts(state_db),
                                                     "samples counted by the rollup buckets (5 min and 1 h)")):
            problems.append(p)

    with tempfile.TemporaryDirectory(prefix="weibao-bench-") as tmp:
        work = Path(tmp)
        if "sqlite" in backends:
            for workers in worker_counts:
                senders = args.clients * workers
                label = f"collector HTTP -> SQLite, {workers} worker(s)"
                (work / f"sqlite-{workers}").mkdir()
                c = via_collector(work / f"sqlite-{workers}", {"workers": workers}, bodies, args.devices, senders)
                check(label, sqlite_points(c.state_db), batches, c.state_db)
                results.append(Result(label, "SQLite", senders, n, c.seconds, c.cpu_s))
                memory_lines.append(f"collector resident memory (SQLite, {workers} worker(s)): "
                                    f"{c.rss_kib / 1024:.0f} MiB at the end, {c.hwm_kib / 1024:.0f} MiB peak "
                                    "(all processes)")
            for senders in sender_counts:
                label = f"raw executemany -> SQLite, {senders} connection(s)"
                db = work / f"raw-{senders}.db"
                results.append(Result(label, "SQLite", senders, n, raw_sqlite(db, timed, senders), same=True))
                check(label, sqlite_points(db), batches[2:], None)
            label = "raw executemany -> SQLite, 1 connection, synchronous=NORMAL (earlier baseline)"
            db = work / "raw-earlier.db"
            results.append(Result(label, "SQLite", 1, n, raw_sqlite(db, timed, 1, synchronous="NORMAL"),
                                  earlier=True))
            check(label, sqlite_points(db), batches[2:], None)
        if "victoria" in backends and not victoria.available():
            print("victoria-metrics not installed: its rows are skipped", file=sys.stderr)
        elif "victoria" in backends:
            for workers in worker_counts:
                senders = args.clients * workers
                label = f"collector HTTP -> VictoriaMetrics, {workers} worker(s)"
                with victoria.run_victoria(work / f"vm-{workers}") as vm:
                    (work / f"influx-{workers}").mkdir()
                    cfg = {"workers": workers, "tsdb": {"backend": "influxdb", "influxdb": {
                        "url": vm.url, "org": "weibao", "bucket": "weibao"}}}
                    c = via_collector(work / f"influx-{workers}", cfg, bodies, args.devices, senders)
                    check(label, victoria_points(vm.url, n + len(batches[0]) + len(batches[1])), batches, c.state_db)
                results.append(Result(label, "VictoriaMetrics", senders, n, c.seconds, c.cpu_s))
                memory_lines.append(f"collector resident memory (VictoriaMetrics, {workers} worker(s)): "
                                    f"{c.rss_kib / 1024:.0f} MiB at the end, {c.hwm_kib / 1024:.0f} MiB peak "
                                    "(all processes)")
            for senders in sorted({1, *sender_counts}):
                label = f"raw line protocol -> VictoriaMetrics, {senders} connection(s)"
                with victoria.run_victoria(work / f"vm-raw-{senders}") as vm:
                    seconds = raw_victoria(vm.url, timed, senders)
                    check(label, victoria_points(vm.url, n), batches[2:], None)
                results.append(Result(label, "VictoriaMetrics", senders, n, seconds,
                                      same=senders in sender_counts, earlier=senders == 1))

    require_complete("ingest", problems)
    print(f"\n{n:,} samples in batches of {args.batch:,}, {args.rounds} sample(s) per series per batch "
          f"({args.batch // args.rounds:,} series); every sample read back from each store (and every rollup "
          f"bucket's count from the collector's) and found as sent\n")
    # CPU per sample is steadier than samples/s on a shared machine: other load slows the clock, not the work
    print(table(results, n))
    print()
    print("senders: the collector with W workers is sent to by "
          f"{args.clients} x W threads of this process (one HTTP connection each); a raw row with N senders is "
          "N threads with one connection each (SQLite: writers take turns; VictoriaMetrics: posts in parallel). "
          "Raw SQLite rows use the collector's settings (WAL, synchronous=FULL) except the earlier baseline "
          "(one connection, synchronous=NORMAL: commits not synced to disk). The senders and the raw writers "
          "share the machine's cores with the collector.")
    print()
    for line in memory_lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
