"""Collector replicas: engine takeover after a SIGKILL of the leader, and ingest with 1, 2 and 3 replicas.

    .venv/bin/python bench/ha.py [--trials 5] [--samples 200000] [--replicas 1,2,3]

Starts PostgreSQL and VictoriaMetrics on loopback (as the tests do), then:

* takeover: three replicas with the default ``ha`` settings (check every 1 s); the leader is killed with
  SIGKILL, and the time until another replica leads (``/healthz``) and until its engine has replayed the
  stores (``GET /api/v1/contract`` ready) is measured; the killed replica is started again between trials;
* ingest: the same batches sent over HTTP, spread evenly over 1, 2 or 3 replicas (two senders each), plus one
  collector with ``ha.enabled: false`` (no engine feed) as the baseline.

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import markdown_table, median  # noqa: E402
from bench.ingest import AGENT, PER_DEVICE, encode, make_batches, register  # noqa: E402
from tests.peers import postgres, victoria  # noqa: E402
from tests.peers.collector import CollectorPeer, run_collector  # noqa: E402


def config(pg: postgres.Postgres, vm: victoria.Victoria, name: str, **ha: Any) -> dict[str, Any]:
    return {"state_url": pg.url, "ha": {"replica": name, **ha},
            "tsdb": {"backend": "influxdb", "influxdb": {"url": vm.url, "org": "weibao", "bucket": "weibao"}}}


def health(peer: CollectorPeer) -> dict[str, Any]:
    try:
        out: dict[str, Any] = httpx.get(f"{peer.url}/healthz", timeout=1.0).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return out


@contextmanager
def replicas(work: Path, pg: postgres.Postgres, vm: victoria.Victoria, n: int,
             **ha: Any) -> Iterator[list[CollectorPeer]]:
    with ExitStack() as stack:
        peers = []
        for i in range(n):
            d = work / f"r{i}"
            d.mkdir(parents=True, exist_ok=True)
            peers.append(stack.enter_context(run_collector(d, config(pg, vm, f"r{i}", **ha))))
        yield peers


def takeover(work: Path, pg: postgres.Postgres, vm: victoria.Victoria, trials: int) -> list[tuple[float, float]]:
    """(kill -> another replica leads, kill -> its engine is ready) per trial."""
    out: list[tuple[float, float]] = []
    with ExitStack() as stack:
        peers: dict[str, CollectorPeer] = {}
        for i in range(3):
            d = work / f"t{i}"
            d.mkdir()
            peers[f"t{i}"] = stack.enter_context(run_collector(d, config(pg, vm, f"t{i}")))
        eng = next(iter(peers.values())).token("bench-eng", "engineer")
        for _ in range(trials):
            leader = None
            for _wait in range(300):  # bounded: 30 s
                leader = next((name for name, p in peers.items() if health(p).get("leader")), None)
                if leader is not None:
                    break
                time.sleep(0.1)
            if leader is None:
                raise SystemExit("no replica leads")
            dead = peers[leader]
            os.kill(dead.proc.pid, signal.SIGKILL)
            t0 = time.monotonic()
            dead.proc.wait(10)
            others = [p for name, p in peers.items() if name != leader]
            new = None
            for _wait in range(1200):  # bounded: 60 s
                new = next((p for p in others if health(p).get("leader")), None)
                if new is not None:
                    break
                time.sleep(0.05)
            if new is None:
                raise SystemExit("no replica took over within 60 s")
            elected = time.monotonic() - t0
            for _wait in range(1200):
                r = httpx.get(f"{new.url}/api/v1/contract", headers={"Authorization": f"Bearer {eng}"}, timeout=5)
                if r.json().get("ready"):
                    break
                time.sleep(0.05)
            out.append((elected, time.monotonic() - t0))
            # the killed replica comes back as a candidate for the next trial
            peers[leader] = stack.enter_context(run_collector(dead.data_dir.parent, config(pg, vm, leader)))
    return out


def ingest(peers: list[CollectorPeer], token: str, bodies: list[bytes], per_replica: int) -> float:
    """Seconds to send ``bodies``, spread over ``peers``."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    errors: list[str] = []

    def worker(peer: CollectorPeer) -> None:
        with httpx.Client(base_url=peer.url, headers={"Authorization": f"Bearer {token}",
                                                        "Content-Type": "application/json"}, timeout=120) as h:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                r = h.post("/api/v1/ingest", content=body)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=worker, args=(p,)) for p in peers for _ in range(per_replica)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    if errors:
        raise SystemExit(f"ingest failed: {errors[:3]}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--replicas", default="1,2,3")
    ap.add_argument("--skip-ingest", action="store_true")
    args = ap.parse_args()
    if postgres.missing() or not victoria.available():
        raise SystemExit("PostgreSQL and victoria-metrics are needed")
    with tempfile.TemporaryDirectory(prefix="weibao-bench-ha-") as tmp, postgres.run_postgres() as pg, \
            victoria.run_victoria(Path(tmp) / "vm") as vm:
        work = Path(tmp)
        times = takeover(work, pg, vm, args.trials)
        print(f"\nengine takeover after SIGKILL of the leader, 3 replicas, default ha settings "
              f"(check_interval_s 1), {len(times)} trials\n")
        print(markdown_table(("from the kill to", "median s", "max s"), [
            ("another replica leads", f"{median(t[0] for t in times):.2f}", f"{max(t[0] for t in times):.2f}"),
            ("its engine has replayed and runs", f"{median(t[1] for t in times):.2f}",
             f"{max(t[1] for t in times):.2f}")]))
        if args.skip_ingest:
            return 0
        devices = max(50, -(-args.batch // (2 * PER_DEVICE)))
        rows = []
        with replicas(work / "base", pg, vm, 1, enabled=False) as peers:
            token = peers[0].token(AGENT)
            register(peers[0], token, devices)
            batches = make_batches(args.samples, args.batch, devices)
            n = sum(len(b) for b in batches)
            ingest(peers, token, [encode(b) for b in batches[:2]], 2)  # warm-up
            elapsed = ingest(peers, token, [encode(b) for b in batches], 2)
            rows.append(("1 collector, ha off (no engine feed)", n / elapsed))
        for k in [int(x) for x in args.replicas.split(",")]:
            with replicas(work / f"ing{k}", pg, vm, k) as peers:
                ingest(peers, token, [encode(b) for b in batches[:2]], 2)
                elapsed = ingest(peers, token, [encode(b) for b in batches], 2)
                rows.append((f"{k} replica(s), 2 senders each", n / elapsed))
        print(f"\ningest over HTTP into PostgreSQL + VictoriaMetrics, {n:,} samples in batches of {args.batch:,}, "
              f"{os.cpu_count()} cores\n")
        print(markdown_table(("collectors", "samples/s"), [(name, f"{rate:,.0f}") for name, rate in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
