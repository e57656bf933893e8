"""Bounded floods for tests, run as a process of their own (its open-file limit raised there only):

    python -m tests.peers.flood tcp --port P --count N --hold S        N idle connections to 127.0.0.1:P for S s
    python -m tests.peers.flood udp --port P --rate R --seconds S --payload HEX [--source 127.0.0.9]

Every flood is bounded in count and time and ends by itself; only 127.0.0.0/8 is ever a target. One JSON
line on stdout when the flood is in place (``ready``), one at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import selectors
import socket
import sys
import time

MAX_COUNT = 5_000
MAX_SECONDS = 60.0


def _say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


# connections are opened in waves: with SYN cookies on (Linux's default), a connection whose last ACK
# arrives while the server's accept queue is full is dropped on the server's side alone, so a flood sent
# at once leaves the client holding sockets the server never sees
WAVE = 50
WAVE_PAUSE_S = 0.05


def tcp(port: int, count: int, hold: float) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = count + 64
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise SystemExit(f"the open-file limit (hard {hard}) is below the {need} this flood needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    for i in range(count):
        if i and i % WAVE == 0:
            time.sleep(WAVE_PAUSE_S)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE)
        socks.append(s)
    connected, failed = 0, 0
    deadline = time.monotonic() + 10
    pending = len(socks)
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            sel.unregister(sock)
            pending -= 1
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected += 1
            else:
                failed += 1
    _say(ready=True, connected=connected, failed=failed, pending=pending)
    time.sleep(hold)
    for s in socks:
        s.close()
    _say(done=True)


def udp(port: int, rate: float, seconds: float, payload: bytes, source: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    _say(ready=True)
    sent = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) + 1
        while sent < due:
            s.sendto(payload, ("127.0.0.1", port))
            sent += 1
        time.sleep(max(0.0, (sent / rate) - (time.monotonic() - start)))
    s.close()
    _say(done=True, sent=sent, seconds=round(time.monotonic() - start, 2))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="kind", required=True)
    t = sub.add_parser("tcp")
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--count", type=int, required=True)
    t.add_argument("--hold", type=float, required=True)
    u = sub.add_parser("udp")
    u.add_argument("--port", type=int, required=True)
    u.add_argument("--rate", type=float, required=True)
    u.add_argument("--seconds", type=float, required=True)
    u.add_argument("--payload", required=True, help="hex")
    u.add_argument("--source", default="127.0.0.9")
    args = ap.parse_args()
    if args.kind == "tcp":
        tcp(args.port, min(args.count, MAX_COUNT), min(args.hold, MAX_SECONDS))
    else:
        if not args.source.startswith("127."):
            raise SystemExit("loopback sources only")
        udp(args.port, min(args.rate, 10_000.0), min(args.seconds, MAX_SECONDS), bytes.fromhex(args.payload),
            args.source)
    sys.exit(0)


if __name__ == "__main__":
    main()
