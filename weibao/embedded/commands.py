"""``weibao run``: the argparse subcommand that runs agent and collector in one process (weibao.embedded.runtime)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from weibao.agent.commands.agent import hostport
from weibao.core.errors import ConfigError
from weibao.core.files import private_umask

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``run`` command to the ``weibao`` parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="agent and collector in one process: poll, store, tickets and the API for one site")
    p.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    p.add_argument("--data", type=Path, default=Path("weibao-data"),
                   help="data directory: collector state, agent spool (default: %(default)s)")
    p.add_argument("--listen", type=hostport, default=("127.0.0.1", 8480), metavar="HOST:PORT",
                   help="where the API listens (default 127.0.0.1:8480; port 0 picks a free one)")
    p.add_argument("--traps", type=hostport, default=("0.0.0.0", 162), metavar="HOST:PORT",  # noqa: S104
                   help="where to receive SNMP traps (default 0.0.0.0:162, every interface: give the address "
                        "on the devices' network to listen there only)")
    p.add_argument("--no-traps", action="store_true", help="do not receive traps")
    p.add_argument("--name", default=None, help="the agent's name (default: from the inventory's site name)")
    p.add_argument("--config", type=Path, default=None,
                   help="collector configuration YAML (storage backends, retention, limits, tls)")
    p.add_argument("--tls-cert", type=Path, default=None, metavar="FILE",
                   help="serve the API over HTTPS with this certificate (PEM chain)")
    p.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="its private key")
    p.add_argument("--max-parallel", type=int, default=4, help="job runs polling at once")
    p.add_argument("--drain-s", type=float, default=10.0, help="at stop: how long running polls may finish")
    p.add_argument("--final-ship-s", type=float, default=5.0, help="at stop: how long the last ingest may take")
    p.set_defaults(handler=run, log_level=logging.INFO)


def run(args: argparse.Namespace) -> int:
    from weibao.collector.commands.collector import tls_flags
    from weibao.collector.http.server import tune_gc
    from weibao.embedded.runtime import EmbeddedConfig, banner, prepare

    private_umask()  # the collector's state and the agent's spool: the owner's alone, whatever the umask
    config = EmbeddedConfig(
        inventory=args.inventory, data=args.data, listen=args.listen,
        traps=None if args.no_traps else args.traps, agent_name=args.name, collector_config=args.config,
        tls=tls_flags(args), max_parallel=args.max_parallel, drain_s=args.drain_s, final_ship_s=args.final_ship_s)
    try:
        emb = prepare(config)
    except ConfigError as exc:
        for p in exc.problems:
            print(f"weibao run: {p}", file=sys.stderr)
        return 2

    async def main() -> int:
        task = asyncio.create_task(emb.run())
        ready = asyncio.create_task(emb.ready.wait())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        if emb.ready.is_set():
            banner(emb)
        ready.cancel()
        return await task

    tune_gc()
    return asyncio.run(main())
