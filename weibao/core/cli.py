"""The ``weibao`` command: the one entry point and the one logging set-up.

Every subcommand comes from the entry-point group ``weibao.commands`` (``pyproject.toml``): a callable
``register(subparsers)`` adds its parsers and sets ``handler`` (``args -> exit code``) on each. So the core
names no side: the agent's commands and the collector's reach ``weibao`` the same way.
"""

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
COMMANDS_GROUP = "weibao.commands"
# the order of ``weibao --help``: what a newcomer runs first; others follow by name
_ORDER = ("check", "poll", "inspect", "agent", "collector", "run", "demo")

Handler = Callable[[argparse.Namespace], int]


def add_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="data directory for state between runs (default: %(default)s or $WEIBAO_DATA)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weibao", description="Contract-driven maintenance monitoring.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def rank(name: str) -> tuple[int, str]:
        return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)

    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: rank(e.name)):
        ep.load()(sub)
    return parser


# libraries that are chatty at INFO
_NOISY = ("pysnmp", "paramiko", "netmiko", "asyncio", "httpx", "httpcore", "uvicorn.error", "weasyprint",
          "fontTools")


def configure_logging(verbosity: int, base: int = logging.WARNING) -> None:
    """``base`` by default (warnings; a daemon's command sets ``log_level`` INFO: its log is its record),
    each ``-v`` one step more; third-party libraries stay at warnings."""
    level = max(logging.DEBUG, base - 10 * verbosity)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, getattr(args, "log_level", logging.WARNING))
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code
