"""``weibao inspect``: poll everything, evaluate the hidden-danger checks, write the inspection report."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from weibao.agent.commands._common import inventory_or_exit
from weibao.agent.inventory import Device, Inventory
from weibao.agent.runner import ALL_PROTOCOLS, poll_once
from weibao.agent.state import StateStore
from weibao.core.cli import add_data_option
from weibao.core.errors import ConfigError
from weibao.core.model import PollResult, Protocol, utcnow
from weibao.core.packaged import default_rules_dir

if TYPE_CHECKING:
    from weibao.agent.inspection import Inspection, InspectionRules


def _needs_second_reading(results: Sequence[PollResult]) -> set[str]:
    """Devices whose interface counters were read for the first time: rates need a second reading."""
    have_status: set[str] = set()
    have_rate: set[str] = set()
    for r in results:
        if r.protocol is not Protocol.SNMP:
            continue
        for s in r.samples:
            if s.metric == "if.oper_up":
                have_status.add(r.device)
            elif s.metric == "if.in_bps":
                have_rate.add(r.device)
    return have_status - have_rate


async def collect(devices: Sequence[Device], state: StateStore, config_dir: Path,
                  settle_s: float) -> list[PollResult]:
    """One full round; SNMP is read again after ``settle_s`` where rates had no earlier reading."""
    results = await poll_once(devices, ALL_PROTOCOLS, state, config_dir)
    again = _needs_second_reading(results)
    if again and settle_s > 0:
        await asyncio.sleep(settle_s)
        chosen = [d for d in devices if d.name in again]
        second = await poll_once(chosen, {Protocol.SNMP}, state, config_dir)
        first = {r.device: r for r in results if r.protocol is Protocol.SNMP}
        for r in second:
            if r.device in first:
                # what the first reading saw happen (a reboot) stays true; its figures are superseded
                r.events[:0] = first[r.device].events
        replaced = {r.device for r in second}
        results = [r for r in results
                   if not (r.protocol is Protocol.SNMP and r.device in replaced)] + second
    return results


def run_inspection(inventory: Inventory, rules: InspectionRules, *, data: Path, out: Path, lang: Literal["zh", "en"],
                   settle_s: float) -> tuple[Inspection, Path]:
    """Poll every device, evaluate the checks, write the report, and remember this run for the next one."""
    from weibao.agent.inspection import History, inspect, write_report

    devices = list(inventory.devices.values())
    state = StateStore.in_dir(data)
    results = asyncio.run(collect(devices, state, data / "configs", settle_s))
    history = History.load(data)
    now = utcnow()
    inspection = inspect(devices, results, rules, history, now=now)
    path = write_report(inspection, out, lang=lang, site=inventory.site)
    history.update(results, metrics=rules.remembered_metrics, now=now)
    history.save()
    state.save()
    return inspection, path


def register(sub: Any) -> None:
    p = sub.add_parser("inspect", help="run the daily inspection and write the report")
    p.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    add_data_option(p)
    p.add_argument("--out", type=Path, required=True, help="directory for the report")
    p.add_argument("--lang", choices=["zh", "en"], default="zh")
    p.add_argument("--rules", type=Path, default=None,
                   help="rules directory (default: $WEIBAO_RULES, ./rules, else the rules shipped in the package)")
    p.add_argument("--settle", type=float, default=5.0,
                   help="seconds between the two SNMP readings taken when no earlier reading exists")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from weibao.agent.inspection import load_inspection_rules

    inventory = inventory_or_exit(args.inventory)
    if inventory is None:
        return 2
    try:
        rules = load_inspection_rules((args.rules or default_rules_dir()) / "inspection.yaml")
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    inspection, path = run_inspection(inventory, rules, data=args.data, out=args.out, lang=args.lang,
                                      settle_s=args.settle)
    s = inspection.summary
    print(f"{s.checked} devices checked: {s.healthy} healthy, {s.with_findings} with findings, "
          f"{s.unreachable} unreachable")
    print(f"report: {path.resolve()}")
    return 0
