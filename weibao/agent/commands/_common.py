"""What the one-shot commands share: loading the inventory with a readable error, and the event loop."""

from __future__ import annotations

import sys
from pathlib import Path

from weibao.agent.inventory import Device, Inventory, load_inventory
from weibao.core.errors import ConfigError


def inventory_or_exit(path: Path) -> Inventory | None:
    """Load the inventory, or print its problems (file:line: key) and return None."""
    try:
        return load_inventory(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def select_or_exit(inventory: Inventory, names: list[str]) -> list[Device] | None:
    try:
        return inventory.select(names)
    except KeyError as exc:
        print(f"unknown device(s): {exc.args[0]} (not in {inventory.source})", file=sys.stderr)
        return None
