"""What HTTPS costs ingest: the same batches to the real collector over HTTP and over HTTPS, in one run:

    .venv/bin/python bench/tls.py [--samples 200000] [--batch 5000] [--rounds 3] [--clients 2]

Two collectors (uvicorn subprocesses, SQLite, one worker each) run side by side on 127.0.0.1, one plain,
one with a certificate from a CA made here (weibao's own ``weibao.collector.pki``, EC P-256). Each
round sends the same pre-encoded batches to both, in alternating order, each sender on one kept-alive
connection as an agent does; the table shows the median samples/s and the collector's CPU per sample
of each, and what TLS costs. A second table times new connections (handshake + one small request),
the cost an agent pays once per connection. Everything stops by itself.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import cpu_seconds  # noqa: E402
from bench.ingest import AGENT, PER_DEVICE, encode, make_batches, post_all, register  # noqa: E402
from tests.peers.collector import CollectorPeer, run_collector  # noqa: E402
from weibao.collector import pki  # noqa: E402


def certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA file, server certificate, server key) for 127.0.0.1."""
    ca = pki.make_ca("bench")
    pki.write(ca, directory / "ca.crt", directory / "ca.key")
    pki.write(pki.issue(ca, "localhost", dns=["localhost"], ips=["127.0.0.1"], server=True),
              directory / "server.crt", directory / "server.key")
    return directory / "ca.crt", directory / "server.crt", directory / "server.key"


def fresh_connections(peer: CollectorPeer, n: int) -> float:
    """Seconds for ``n`` new connections, each one GET /healthz (one client that keeps none alive)."""
    with httpx.Client(verify=peer.verify, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as c:
        t0 = time.perf_counter()
        for _ in range(n):
            c.get(f"{peer.url}/healthz").raise_for_status()
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--samples", type=int, default=200_000, help="samples per round and path")
    ap.add_argument("--batch", type=int, default=5_000, help="samples per batch (the agent's default)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=2, help="concurrent senders")
    ap.add_argument("--connections", type=int, default=200, help="new connections timed per path")
    args = ap.parse_args()
    devices = max(200, -(-args.batch // (2 * PER_DEVICE)))
    per_round = -(-args.samples // args.batch)
    batches = make_batches(args.batch * (per_round * args.rounds + 2), args.batch, devices, rounds=2)
    bodies = [encode(b) for b in batches]
    n = sum(len(b) for b in batches[2:2 + per_round])
    rates: dict[str, list[float]] = {"http": [], "https": []}
    cpus: dict[str, list[float]] = {"http": [], "https": []}
    with tempfile.TemporaryDirectory(prefix="weibao-bench-tls-") as tmp:
        work = Path(tmp)
        for d in ("http", "https", "pki"):
            (work / d).mkdir()
        ca, cert, key = certificates(work / "pki")
        tls = {"tls": {"cert_file": str(cert), "key_file": str(key)}}
        with run_collector(work / "http") as plain, \
                run_collector(work / "https", tls, verify=ssl.create_default_context(cafile=str(ca))) as secure:
            peers = {"http": plain, "https": secure}
            tokens = {name: p.token(AGENT) for name, p in peers.items()}
            for name, p in peers.items():
                register(p, tokens[name], devices)
                post_all(p, tokens[name], bodies[:2], args.clients)  # warm-up: series ids, connections
            for r in range(args.rounds):
                chunk = bodies[2 + r * per_round:2 + (r + 1) * per_round]
                for name in (("http", "https") if r % 2 == 0 else ("https", "http")):
                    p = peers[name]
                    cpu0 = cpu_seconds(p.proc.pid, tree=True)
                    elapsed = post_all(p, tokens[name], chunk, args.clients)
                    cpus[name].append(cpu_seconds(p.proc.pid, tree=True) - cpu0)
                    rates[name].append(n / elapsed)
            handshakes = {name: args.connections / fresh_connections(p, args.connections)
                          for name, p in peers.items()}

    print(f"\n{n:,} samples per round in batches of {args.batch:,}, {args.rounds} rounds alternating, "
          f"{args.clients} sender(s) on kept-alive connections, one collector worker each\n")
    print(f"| {'path':<28} | {'samples/s (median)':>18} | {'rounds':>27} | {'collector CPU us/sample':>23} |")
    print(f"|{'-' * 30}|{'-' * 20}|{'-' * 29}|{'-' * 25}|")
    for name in ("http", "https"):
        per = statistics.median(cpus[name]) / n * 1e6
        spread = ", ".join(f"{x:,.0f}" for x in rates[name])
        print(f"| {'collector over ' + name.upper():<28} | {statistics.median(rates[name]):>18,.0f} | {spread:>27} "
              f"| {per:>23.1f} |")
    ratio = statistics.median(rates["https"]) / statistics.median(rates["http"])
    cpu_ratio = statistics.median(cpus["https"]) / statistics.median(cpus["http"])
    print(f"\nHTTPS / HTTP: throughput {ratio:.2f} (TLS costs {100 * (1 - ratio):.0f} %), collector CPU per sample "
          f"{cpu_ratio:.2f}\n")
    print(f"| {'new connections':<28} | {'per second':>18} |")
    print(f"|{'-' * 30}|{'-' * 20}|")
    for name in ("http", "https"):
        print(f"| {name.upper() + ' (handshake + GET)':<28} | {handshakes[name]:>18,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
