"""Web console response times with a big store, against the API answering the same question; one command:

    .venv/bin/python bench/console.py [--devices 1000] [--tickets 10000] [--requests 25]

Starts the real collector (uvicorn subprocess, contract engine off so nothing changes the store while it
is timed), registers ``--devices`` devices, ingests an hour of five metrics for each and a day of
history (with 8 interfaces) for one of them, writes ``--tickets`` tickets with their events straight
into the state store (2 % of them not closed), then times, one request at a time, the overview, the
first page of the ticket list and the device page, each beside the API request that reads the same data
(GET /api/v1/devices; /api/v1/tickets?limit=100; the device's series). Prints medians, the 90th
percentile, the ratio to the API and whether the median is under the 300 ms budget; exits 1 if a page
did not show all the work (every device counted, 100 tickets listed, every chart drawn).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, event

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.peers.collector import CollectorPeer, run_collector  # noqa: E402
from weibao.collector.access.accounts import UserRole, add  # noqa: E402
from weibao.collector.tickets import machine  # noqa: E402
from weibao.collector.tickets.store import TicketStore  # noqa: E402

AGENT = "bench-console"
PASSWORD = "bench-console-pass"  # noqa: S105  # a throwaway account of the benchmark
BUDGET_MS = 300.0
METRICS = ("up", "icmp.rtt_ms", "icmp.loss_pct", "cpu.util_pct", "mem.util_pct")
CATEGORIES = ("backbone", "provincial", "business", "realtime", "mis", "processing")


def device(i: int) -> str:
    return f"dev-{i:04d}"


def register(peer: CollectorPeer, token: str, n: int) -> None:
    devices = [{"name": device(i), "address": "127.0.0.1", "kind": "switch" if i % 3 else "server",
                "category": CATEGORIES[i % len(CATEGORIES)], "depends_on": device(0) if i % 10 == 1 else None,
                "asset": {"vendor": "Huawei", "model": "S5720"}} for i in range(n)]
    with peer.client(token) as c:
        r = c.put("/api/v1/inventory", json={"site": f"site-{n}", "agent": AGENT, "devices": devices})
        r.raise_for_status()


def ingest(peer: CollectorPeer, token: str, n: int, now: datetime) -> int:
    """An hour of every metric (one a minute) for every device, a day of history for dev-0000."""
    sent = 0
    with peer.client(token) as c:
        def post(samples: list[dict[str, Any]]) -> None:
            nonlocal sent
            r = c.post("/api/v1/ingest", json={"batch_id": str(uuid.uuid4()), "agent": AGENT, "samples": samples,
                                               "events": []})
            r.raise_for_status()
            sent += len(samples)

        batch: list[dict[str, Any]] = []
        for i in range(n):
            down = i % 50 == 7  # a few devices down
            for k in range(60):
                ts = (now - timedelta(minutes=60 - k)).isoformat()
                batch += [{"device": device(i), "metric": m, "ts": ts, "labels": {},
                           "value": (0.0 if down else 1.0) if m == "up" else float((i + k) % 90)} for m in METRICS]
            if len(batch) >= 20_000:
                post(batch)
                batch = []
        for k in range(24 * 60):
            ts = (now - timedelta(hours=24) + timedelta(minutes=k)).isoformat()
            batch += [{"device": device(0), "metric": "if.util_pct", "ts": ts, "labels": {"ifName": f"Gi0/{p}"},
                       "value": float((k + p * 7) % 100)} for p in range(8)]
            batch += [{"device": device(0), "metric": "cpu.util_pct", "ts": ts, "labels": {}, "value": k % 100 / 1.0}]
            if len(batch) >= 20_000:
                post(batch)
                batch = []
        if batch:
            post(batch)
    return sent


def write_tickets(db: Path, n: int, devices: int, now: datetime) -> int:
    """``n`` tickets with 2-4 events each, straight into the state store (98 % closed)."""
    engine = create_engine(f"sqlite:///{db}")
    event.listen(engine, "connect", lambda c, _r: c.execute("PRAGMA synchronous=OFF"))
    store = TicketStore(engine)
    open_left = 0
    for k in range(n):
        at = now - timedelta(minutes=5 * (n - k))
        t = machine.open_ticket(ticket_id=f"B{k:06d}", device=device(k % devices), rule="down", level=3 - k % 3,
                                at=at, affected=[device((k + 1) % devices)] if k % 7 == 0 else []).ticket
        if k % 50 != 0:  # 2 % stay open (some accepted)
            t = machine.accept(t, at=at + timedelta(minutes=3), actor="wang").ticket
            t = machine.restore(t, at=at + timedelta(minutes=30), actor="wang", note="replaced the module").ticket
            t = machine.close(t, at=at + timedelta(hours=2), actor="client").ticket
        elif k % 100 == 0:
            t = machine.accept(t, at=at + timedelta(minutes=3), actor="wang").ticket
            open_left += 1
        else:
            open_left += 1
        store.save(t)
    engine.dispose()
    return open_left


def login(peer: CollectorPeer) -> httpx.Client:
    c = httpx.Client(base_url=peer.url, timeout=60)
    form = c.get("/login")
    pre = re.search(r'name="pre" value="([^"]+)"', form.text)
    assert pre is not None
    r = c.post("/login", data={"pre": pre.group(1), "name": "bench", "password": PASSWORD, "next": "/"})
    if r.status_code != 303:
        raise SystemExit(f"login failed: {r.status_code}")
    return c


def timed(get: Callable[[], httpx.Response], n: int) -> tuple[list[float], httpx.Response]:
    get()  # warm: templates compiled, caches filled
    times = []
    r = None
    for _ in range(n):
        t = time.perf_counter()
        r = get()
        times.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{r.request.url}: {r.status_code}")
    assert r is not None
    return times, r


def p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.9 * len(xs)) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--tickets", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=25)
    args = ap.parse_args()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with tempfile.TemporaryDirectory(prefix="weibao-bench-console-") as tmp, \
            run_collector(Path(tmp), {"contract": {"enabled": False}}) as peer:
        t = time.perf_counter()
        agent, eng = peer.token(AGENT), peer.token("bench-eng", "engineer")
        register(peer, agent, args.devices)
        samples = ingest(peer, agent, args.devices, now)
        open_left = write_tickets(peer.data_dir / "state.db", args.tickets, args.devices, now)
        engine = create_engine(f"sqlite:///{peer.data_dir / 'state.db'}")
        add(engine, "bench", UserRole.ENGINEER, PASSWORD)
        engine.dispose()
        print(f"store: {args.devices} devices, {samples} samples, {args.tickets} tickets ({open_left} not closed), "
              f"set up in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        console, api = login(peer), peer.client(eng)
        n = args.requests
        frm = (now - timedelta(hours=24)).isoformat()
        rows = []
        checks: list[str] = []

        ov, r = timed(lambda: console.get("/"), n)
        total = sum(int(x) for x in re.findall(r"<td>(\d+)</td></tr>", r.text.split("</table>")[0]))
        if total != args.devices:
            checks.append(f"overview counts {total} devices by category, not {args.devices}")
        ref, _ = timed(lambda: api.get("/api/v1/devices"), n)
        rows.append(("overview  /", ov, "GET /api/v1/devices (every key metric)", ref))

        tl, r = timed(lambda: console.get("/tickets"), n)
        listed = r.text.count('<tr><td><a href="/tickets/')
        if listed != 100:
            checks.append(f"ticket list shows {listed} rows, not 100")
        ref, _ = timed(lambda: api.get("/api/v1/tickets", params={"limit": 100}), n)
        rows.append(("ticket list  /tickets", tl, "GET /api/v1/tickets?limit=100", ref))

        dp, r = timed(lambda: console.get(f"/devices/{device(0)}"), n)
        charts = r.text.count('<figure class="chart"')
        if charts != len(METRICS) + 1:  # the five metrics and the interfaces
            checks.append(f"device page draws {charts} charts, not {len(METRICS) + 1}")

        def series() -> httpx.Response:
            last = None
            for m in (*METRICS, "if.util_pct"):
                last = api.get("/api/v1/series", params={"device": device(0), "metric": m, "from": frm})
            assert last is not None
            return last

        ref, _ = timed(series, n)
        rows.append((f"device page  /devices/{device(0)}", dp, "6 x GET /api/v1/series (24 h)", ref))
        console.close()
        api.close()

    print(f"\n### Web console, {args.devices} devices and {args.tickets} tickets in the store "
          f"({n} requests each, one at a time)\n")
    print("| page | median ms | p90 ms | API reference (same data) | median ms | ratio | under 300 ms |")
    print("| --- | ---: | ---: | --- | ---: | ---: | --- |")
    slow = False
    for page, xs, ref_name, ref in rows:
        med, rmed = statistics.median(xs), statistics.median(ref)
        slow |= med >= BUDGET_MS
        print(f"| {page} | {med:.1f} | {p90(xs):.1f} | {ref_name} | {rmed:.1f} | {med / rmed:.2f} | "
              f"{'yes' if med < BUDGET_MS else 'NO'} |")
    for c in checks:
        print(f"\nINCOMPLETE: {c}")
    if slow:
        print("\nover budget: a median reached 300 ms")
    return 1 if checks else 0


if __name__ == "__main__":
    raise SystemExit(main())
