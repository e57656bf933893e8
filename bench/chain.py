"""What dependencies cost the contract engine: the same devices going down, flat and as chains of the
deepest kind a registration may make (16 upstreams above the last device), in one run:

    .venv/bin/python bench/chain.py [--chains 12] [--rounds 3]

One collector (uvicorn subprocess, SQLite) on 127.0.0.1 per layout. Each of ``chains`` groups holds 17
devices: flat, each on its own; chained, each behind the one before. Twelve minutes of ``up`` (up for two,
then down) are sent as twelve batches; the time from the first batch until the engine has processed all
of them, and the tickets, are taken. Flat: one ticket per device; chained: one ticket per chain, its
16 dependents listed as affected. Everything stops by itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.peers.collector import run_collector  # noqa: E402
from weibao.collector.registry import MAX_CHAIN  # noqa: E402

DEPTH = MAX_CHAIN + 1  # devices per chain: the last has MAX_CHAIN upstreams above it


def devices(chains: int, chained: bool) -> list[dict[str, Any]]:
    return [{"name": f"c{c}-{i}", "address": "127.0.0.1", "kind": "switch", "category": "backbone",
             "depends_on": f"c{c}-{i - 1}" if chained and i else None, "schedule": {"icmp_s": 60}}
            for c in range(chains) for i in range(DEPTH)]


def one_round(chains: int, chained: bool) -> tuple[float, int, int]:
    """(seconds until every batch was processed, tickets, affected devices listed on them)."""
    with tempfile.TemporaryDirectory() as tmp, run_collector(Path(tmp), {}) as peer:
        agent = peer.client(peer.token("bench-chain"))
        eng = peer.client(peer.token("bench-eng", "engineer"))
        devs = devices(chains, chained)
        r = agent.put("/api/v1/inventory", json={"site": "bench", "agent": "bench-chain", "devices": devs},
                      timeout=120)
        r.raise_for_status()
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15)
        processed = eng.get("/api/v1/contract").json()["batches_processed"]
        start = time.monotonic()
        for minute in range(12):
            ts = (t0 + timedelta(minutes=minute)).isoformat()
            samples = [{"device": d["name"], "metric": "up", "value": 1.0 if minute < 2 else 0.0, "ts": ts}
                       for d in devs]
            agent.post("/api/v1/ingest", json={"batch_id": str(uuid.uuid4()), "agent": "bench-chain",
                                               "samples": samples, "events": []}, timeout=120).raise_for_status()
        while time.monotonic() - start < 300:
            state = eng.get("/api/v1/contract").json()
            if not state.get("queued") and state.get("batches_processed") == processed + 12:
                break
            time.sleep(0.05)
        else:
            raise SystemExit("the engine did not process the batches within 300 s")
        took = time.monotonic() - start
        tickets = eng.get("/api/v1/tickets", params={"limit": 10000}).json()["tickets"]
        agent.close()
        eng.close()
        return took, len(tickets), sum(len(t["affected"]) for t in tickets)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    times: dict[bool, list[float]] = {False: [], True: []}
    counts: dict[bool, tuple[int, int]] = {}
    for _ in range(args.rounds):
        for chained in (False, True):  # alternating: the machine's noise falls on both
            took, tickets, affected = one_round(args.chains, chained)
            times[chained].append(took)
            counts[chained] = (tickets, affected)
    n = args.chains * DEPTH
    # the work was done: the tickets are what the layout must give
    if counts[False] != (n, 0) or counts[True] != (args.chains, args.chains * (DEPTH - 1)):
        raise SystemExit(f"unexpected tickets: flat {counts[False]}, chained {counts[True]}")
    flat_s, chained_s = statistics.median(times[False]), statistics.median(times[True])
    print(f"{n} devices going down, {args.rounds} rounds (median):")
    print("| layout | batches processed in | tickets | affected listed |")
    print("| --- | --- | --- | --- |")
    print(f"| flat | {flat_s:.2f} s | {counts[False][0]} | {counts[False][1]} |")
    print(f"| {args.chains} chains of {DEPTH} | {chained_s:.2f} s | {counts[True][0]} | {counts[True][1]} |")
    print(f"chained / flat: {chained_s / flat_s:.2f}")


if __name__ == "__main__":
    main()
