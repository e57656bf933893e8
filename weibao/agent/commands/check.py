"""``weibao check``: validate inventory, rules and SNMP profiles; one line per problem, file:line: key."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from weibao.core.errors import ConfigError, Problem


def _validate(loader: Callable[[Path], Any], path: Path) -> list[Problem]:
    try:
        loader(path)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def rule_loaders() -> dict[str, Callable[[Path], Any]]:
    """The rule files weibao knows, by file name, with the function that validates each (entry points)."""
    return {ep.name: ep.load() for ep in entry_points(group="weibao.rules")}


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="validate the inventory, rules and profiles without starting anything")
    p.add_argument("--inventory", "-i", type=Path, help="inventory YAML file")
    p.add_argument("--rules", type=Path, help="rules directory (inspection.yaml, contract.yaml)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.inventory is None and args.rules is None:
        print("weibao check: give --inventory FILE and/or --rules DIR", file=sys.stderr)
        return 2
    problems: list[Problem] = []
    checked: list[str] = []
    if args.inventory is not None:
        from weibao.agent.inventory import load_inventory

        problems += _validate(load_inventory, args.inventory)
        checked.append(str(args.inventory))
    if args.rules is not None:
        if not args.rules.is_dir():
            problems.append(Problem(str(args.rules), None, "", "not a directory"))
        else:
            for name, loader in rule_loaders().items():
                path = args.rules / name
                if path.exists():
                    problems += _validate(loader, path)
                    checked.append(str(path))
                else:
                    problems.append(Problem(str(path), None, "", "missing rule file"))
            extra = sorted(p.name for p in args.rules.glob("*.yaml") if p.name not in rule_loaders())
            problems += [Problem(str(args.rules / n), None, "", "unknown rule file") for n in extra]
    from weibao.agent.pollers.snmp.profiles import check_profiles

    problems += check_profiles()
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("ok: " + ", ".join(checked))
    return 0
