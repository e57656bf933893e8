"""``weibao poll``: poll the chosen devices once and print a table, or one JSON document with --json."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from weibao.agent.commands._common import inventory_or_exit, select_or_exit
from weibao.agent.pollers.registry import POLLERS
from weibao.agent.runner import ALL_PROTOCOLS, poll_once
from weibao.agent.state import StateStore
from weibao.core.cli import add_data_option
from weibao.core.model import PollResult
from weibao.core.text import printable
from weibao.core.wire import event_json, sample_json


def document(results: Sequence[PollResult]) -> dict[str, Any]:
    """Samples and events as the wire carries them; one the wire refuses (a NaN reading) is listed as an
    error of its device, as the agent's spool would refuse it."""
    samples: list[dict[str, Any]] = []
    errors = [{"device": e.device, "protocol": e.protocol.value, "message": e.message, "retryable": e.retryable}
              for r in results for e in r.errors]
    for r in results:
        for s in r.samples:
            try:
                samples.append(sample_json(s))
            except ValueError as exc:
                errors.append({"device": r.device, "protocol": r.protocol.value, "message": str(exc),
                               "retryable": True})
    return {"samples": samples, "events": [event_json(e) for r in results for e in r.events], "errors": errors}


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value == int(value) and abs(value) < 1e12 else f"{value:.2f}"


def table(results: Sequence[PollResult]) -> str:
    rows: list[tuple[str, str, str, str]] = []
    for r in results:
        for s in r.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            rows.append((r.device, s.metric, label, _fmt(s.value)))
        for e in r.errors:
            rows.append((r.device, f"{e.protocol.value}.error", "", e.message))
        for ev in r.events:
            rows.append((r.device, f"event:{ev.kind.value}", "", json.dumps(dict(ev.data), ensure_ascii=False)[:80]))
    rows.sort(key=lambda row: (row[0], row[1], row[2]))
    # what a device answers (labels, error texts, trap data) reaches the terminal with controls escaped
    rows = [(printable(a), printable(b), printable(c), printable(d)) for a, b, c, d in rows]
    head = ("DEVICE", "METRIC", "LABELS", "VALUE")
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def register(sub: Any) -> None:
    p = sub.add_parser("poll", help="poll the chosen devices once, now")
    p.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    add_data_option(p)
    p.add_argument("--device", "-d", action="append", default=[], metavar="NAME", help="poll only this device")
    p.add_argument("--protocol", "-p", action="append", choices=sorted(POLLERS), default=[],
                   help="only this protocol (repeatable; default all)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    inventory = inventory_or_exit(args.inventory)
    if inventory is None:
        return 2
    devices = select_or_exit(inventory, args.device)
    if devices is None:
        return 2
    protocols = set(args.protocol) or set(ALL_PROTOCOLS)
    state = StateStore.in_dir(args.data)
    results = asyncio.run(poll_once(devices, protocols, state, args.data / "configs"))
    state.save()
    if args.json:
        json.dump(document(results), sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        print(table(results))
    return 0
