"""``weibao devices list`` and ``weibao devices move``: which agent each device belongs to, and handing one over.

A device belongs to the agent that registered it: another agent's registration or samples of it are
refused. When a device really moves (a new agent polls that network), an admin says so here, on the
collector's machine (the command writes the state store directly, like ``weibao token``):

    weibao devices move NAME --to AGENT [--config FILE | --data DIR]

The move is recorded with the operating-system user who made it and logged by the collector; the
device waits, inactive, until its new agent registers it.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from weibao.core.errors import ConfigError
from weibao.core.inventory import DEVICE_NAME
from weibao.core.text import printable


def _name(text: str) -> str:
    if not DEVICE_NAME.match(text):
        raise argparse.ArgumentTypeError(f"{printable(text)!r}: letters, digits, '.', '_' and '-' only")
    return text


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None, help="the collector's data directory")
    p.add_argument("--config", type=Path, default=None, help="collector configuration YAML")


def register(sub: Any) -> None:
    d = sub.add_parser("devices", help="registered devices and the agents they belong to; move one to another agent")
    dsub = d.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    p = dsub.add_parser("list", help="every registered device with its agent")
    _common(p)
    p.set_defaults(handler=devices_list)
    p = dsub.add_parser("move", help="hand a device to another agent (recorded and logged)")
    _common(p)
    p.add_argument("name", type=_name)
    p.add_argument("--to", type=_name, required=True, metavar="AGENT", help="the agent that polls it from now on")
    p.set_defaults(handler=devices_move)


def _registry(args: argparse.Namespace) -> Any:
    from weibao.collector.commands.collector import state_engine
    from weibao.collector.registry import Registry

    return Registry(state_engine(args))


def devices_list(args: argparse.Namespace) -> int:
    try:
        rows = _registry(args).listing()
    except ConfigError as exc:
        print(f"weibao: {exc}", file=sys.stderr)
        return 2
    for r in rows:
        updated = datetime.fromtimestamp(r["updated_ms"] / 1000, UTC).isoformat(timespec="seconds")
        state = "active" if r["active"] else "inactive"
        print("\t".join(printable(v) for v in (r["name"], r["agent"], r["site"], r["kind"], r["category"], state,
                                               updated)))
    return 0


def devices_move(args: argparse.Namespace) -> int:
    try:
        move = _registry(args).move(args.name, args.to, actor=getpass.getuser())
    except ConfigError as exc:
        print(f"weibao: {exc}", file=sys.stderr)
        return 2
    except KeyError:
        print(f"weibao: no agent registered a device {args.name}", file=sys.stderr)
        return 1
    print(f"device {move.device} moved from agent {move.from_agent} to agent {move.to_agent}; it becomes active "
          f"when {move.to_agent} registers it", file=sys.stderr)
    return 0
