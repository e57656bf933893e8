"""``weibao agent`` (run the daemon) and ``weibao agent status`` (read its spool and counters)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from weibao.agent.daemon import AgentConfig, default_agent_name, run_daemon
from weibao.agent.spool import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, SPOOL_FILE, SpoolLimits, SpoolStats, open_stats
from weibao.core.text import escape_json, printable
from weibao.core.wire import CLOCK_WARN_S


def hostport(text: str) -> tuple[str, int]:
    """argparse type for HOST:PORT (an empty host means every address)."""
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an empty host means every address


def register(subparsers: Any) -> None:
    """Add the ``agent`` command (and ``agent status``) to the ``weibao`` parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "agent", help="run the agent daemon: poll on schedule, spool, ship to the collector, receive traps")
    p.add_argument("--inventory", "-i", type=Path, help="inventory YAML file")
    p.add_argument("--collector", help="the collector's base URL, e.g. https://collector.example:8470 "
                                       "(http:// only to this machine, unless --allow-insecure-http); several "
                                       "replicas: URLs separated by commas, tried in order (failover)")
    p.add_argument("--token-file", type=Path, help="file holding the collector token (mode 0600)")
    p.add_argument("--ca-file", type=Path, default=os.environ.get("WEIBAO_CA_FILE") or None,
                   help="CA certificate(s) that signed an https:// collector's certificate (default: "
                        "$WEIBAO_CA_FILE, else the system's trust store)")
    p.add_argument("--client-cert", type=Path, default=None,
                   help="this agent's client certificate (PEM) when the collector requires mutual TLS")
    p.add_argument("--client-key", type=Path, default=None, help="the client certificate's key (mode 0600)")
    p.add_argument("--allow-insecure-http", action="store_true",
                   help="allow a plain http:// collector that is not on this machine (the token and every "
                        "sample then cross the network in clear)")
    p.add_argument("--data", type=Path, default=Path("weibao-data"), help="data directory (spool, state)")
    p.add_argument("--name", default=None, help="this agent's name in every batch (default: the host name)")
    p.add_argument("--traps", type=hostport, default=("0.0.0.0", 162), metavar="HOST:PORT",  # noqa: S104
                   help="where to receive SNMP traps (default 0.0.0.0:162, every interface: give the address "
                        "on the devices' network to listen there only)")
    p.add_argument("--no-traps", action="store_true", help="do not receive traps")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus metrics of the agent itself on 127.0.0.1:PORT")
    p.add_argument("--spool-max-rows", type=int, default=DEFAULT_MAX_ROWS)
    p.add_argument("--spool-max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    p.add_argument("--batch-size", type=int, default=5_000, help="samples and events per shipment")
    p.add_argument("--max-parallel", type=int, default=4, help="job runs polling at once")
    p.add_argument("--drain-s", type=float, default=10.0, help="at stop: how long running polls may finish")
    p.add_argument("--final-ship-s", type=float, default=5.0, help="at stop: how long the last shipment may take")
    p.add_argument("--backoff-max-s", type=float, default=60.0, help="longest wait between shipping retries")
    p.set_defaults(handler=run, log_level=logging.INFO)
    sub = p.add_subparsers(dest="agent_command", metavar="status")
    s = sub.add_parser("status", help="spool depth, oldest unsent, dead letters, drops, skipped runs, last ship")
    s.add_argument("--data", type=Path, default=Path("weibao-data"), help="the agent's data directory")
    s.add_argument("--json", action="store_true", help="one JSON document on stdout")
    s.set_defaults(handler=status)


def run(args: argparse.Namespace) -> int:
    missing = [flag for flag, value in (("--inventory", args.inventory), ("--collector", args.collector),
                                        ("--token-file", args.token_file)) if value is None]
    if missing:
        print(f"weibao agent: {', '.join(missing)} required", file=sys.stderr)
        return 2
    config = AgentConfig(
        inventory=args.inventory, collector=args.collector, token_file=args.token_file, data=args.data,
        agent_name=args.name or default_agent_name(), traps=None if args.no_traps else args.traps,
        metrics_port=args.metrics_port,
        spool_limits=SpoolLimits(max_rows=args.spool_max_rows, max_bytes=args.spool_max_bytes),
        batch_items=args.batch_size, max_parallel=args.max_parallel, drain_s=args.drain_s,
        final_ship_s=args.final_ship_s, backoff_max_s=args.backoff_max_s, ca_file=args.ca_file,
        client_cert=args.client_cert, client_key=args.client_key, allow_insecure_http=args.allow_insecure_http)
    return run_daemon(config)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).astimezone().isoformat(timespec="seconds")


def status_document(stats: SpoolStats) -> dict[str, Any]:
    now = time.time()
    return {
        "spool": {"rows": stats.rows, "bytes": stats.payload_bytes, "pending_batches": stats.pending_batches,
                  "oldest_unsent": stats.oldest_created,
                  "oldest_unsent_age_s": None if stats.oldest_created is None else now - stats.oldest_created},
        "counters": stats.counters,
        "dead_letters": [{"batch_id": d.batch_id, "at": d.at, "status": d.status, "reason": d.reason,
                          "samples": d.samples, "events": d.events} for d in stats.dead],
        "last_ship": stats.meta.get("last_ship"),
        "daemon": stats.meta.get("daemon"),
    }


def status(args: argparse.Namespace) -> int:
    try:
        stats = open_stats(args.data / SPOOL_FILE)
    except (FileNotFoundError, OSError) as exc:
        print(f"weibao agent status: {exc}", file=sys.stderr)
        return 1
    doc = status_document(stats)
    if args.json:
        print(escape_json(json.dumps(doc, ensure_ascii=False, indent=2)))
        return 0
    c = stats.counters
    sp = doc["spool"]
    age = "" if sp["oldest_unsent_age_s"] is None else f" ({sp['oldest_unsent_age_s']:.0f} s ago)"
    out = [f"spool: {stats.rows} rows ({stats.payload_bytes} bytes), {stats.pending_batches} batches in flight",
           f"oldest unsent: {_when(stats.oldest_created)}{age}",
           f"shipped: {c.get('shipped_rows', 0)} rows in {c.get('shipped_batches', 0)} batches",
           f"dropped (spool full): {c.get('dropped_full', 0)} rows",
           f"refused (invalid rows): {c.get('refused_invalid', 0)}",
           f"dead letters: {len(stats.dead)} batches"]
    for d in stats.dead:
        out.append(f"  {d.batch_id} at {_when(d.at)}: status {d.status}: {d.reason} "
                   f"({d.samples} samples, {d.events} events)")
    last = doc["last_ship"]
    if last:
        detail = f": {last['detail']}" if last.get("detail") else ""
        out.append(f"last ship: {last['outcome']} (status {last['status']}) at {_when(last['at'])}{detail}")
        offset = last.get("clock_offset_s")
        if offset is not None:
            side = "ahead of" if offset > 0 else "behind"
            warn = "  <- fix this machine's time sync" if abs(offset) > CLOCK_WARN_S else ""
            out.append(f"clock: {abs(offset):.0f} s {side} the collector's{warn}" if offset else
                       "clock: agrees with the collector's")
    else:
        out.append("last ship: never")
    daemon = doc["daemon"] or {}
    if daemon:
        state = "running" if daemon.get("running") else "stopped"
        out.append(f"agent: {daemon.get('agent')} pid {daemon.get('pid')} ({state}, status of "
                   f"{_when(daemon.get('updated'))}), {daemon.get('devices')} devices")
        for name, js in (daemon.get("jobs") or {}).items():
            out.append(f"  job {name}: {js['runs']} runs, {js['skipped']} skipped, {js['timeouts']} timed out, "
                       f"{js['failures']} failed")
        traps = daemon.get("traps")
        if traps:
            out.append("  traps: " + ", ".join(f"{k.removeprefix('traps_')} {v}" for k, v in traps.items()))
        reload = daemon.get("last_reload") or {}
        if reload.get("at") is not None:
            verdict = "accepted" if reload.get("ok") else "refused: " + "; ".join(reload.get("problems", []))
            out.append(f"  last reload at {_when(reload['at'])}: {verdict}")
    print("\n".join(printable(line) for line in out))  # reasons and details come from the collector
    return 0
