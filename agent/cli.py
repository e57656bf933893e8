"""The ``weibao`` command: argument parsing and dispatch to the subcommands; logging is configured here."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path

log = logging.getLogger("weibao")

DEFAULT_DATA = Path(os.environ.get("WEIBAO_DATA", "weibao-data"))
DEFAULT_RULES = Path(os.environ.get("WEIBAO_RULES", "rules"))

Handler = Callable[[argparse.Namespace], int]


def _add_common(p: argparse.ArgumentParser, *, inventory: bool = True, data: bool = True) -> None:
    if inventory:
        p.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    if data:
        p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                       help="data directory for state between runs (default: %(default)s or $WEIBAO_DATA)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weibao", description="Contract-driven maintenance monitoring.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="validate the inventory, rules and profiles without starting anything")
    p.add_argument("--inventory", "-i", type=Path, help="inventory YAML file")
    p.add_argument("--rules", type=Path, help="rules directory (inspection.yaml, contract.yaml)")
    p.set_defaults(handler=_lazy("agent.commands.check", "run"))

    p = sub.add_parser("poll", help="poll the chosen devices once, now")
    _add_common(p)
    p.add_argument("--device", "-d", action="append", default=[], metavar="NAME", help="poll only this device")
    p.add_argument("--protocol", "-p", action="append", choices=["icmp", "snmp", "ssh"], default=[],
                   help="only this protocol (repeatable; default all)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(handler=_lazy("agent.commands.poll", "run"))

    p = sub.add_parser("inspect", help="run the daily inspection and write the report")
    _add_common(p)
    p.add_argument("--out", type=Path, required=True, help="directory for the report")
    p.add_argument("--lang", choices=["zh", "en"], default="zh")
    p.add_argument("--rules", type=Path, default=DEFAULT_RULES, help="rules directory (default: %(default)s)")
    p.add_argument("--settle", type=float, default=5.0,
                   help="seconds between the two SNMP readings taken when no earlier reading exists")
    p.set_defaults(handler=_lazy("agent.commands.inspect", "run"))

    for ep in sorted(entry_points(group="weibao.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def _lazy(module: str, func: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        mod = __import__(module, fromlist=[func])
        result: int = getattr(mod, func)(args)
        return result

    return handler


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * min(verbosity, 2)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pysnmp and paramiko are chatty at INFO
    for noisy in ("pysnmp", "paramiko", "netmiko", "asyncio", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
