"""``weibao tickets ...`` and ``weibao maintenance ...``: the tickets API from the command line (HTTP, httpx).

    weibao tickets list [--state open,accepted] [--device D] [--level N] [--since ISO] [--json]
    weibao tickets show ID [--json]
    weibao tickets accept|restore|report|comment|close ID [--note TEXT] [--json]
    weibao maintenance add --device D [--device D2 ...] --start ISO --end ISO [--reason TEXT] [--json]
    weibao maintenance list [--device D] [--json]

Every command takes ``--collector URL`` (default ``$WEIBAO_COLLECTOR``, else http://127.0.0.1:8470) and
``--token-file FILE`` (default ``$WEIBAO_TOKEN_FILE``) holding an engineer's token. Exit status: 0 done,
1 the collector refused (its reason is printed), 2 a usage or connection problem.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from weibao.collector.commands._api import call as _call
from weibao.collector.commands._api import common as _common
from weibao.collector.commands._api import run

ACTIONS = ("accept", "restore", "report", "comment", "close")


def register(subparsers: Any) -> None:
    """Add ``tickets`` and ``maintenance`` to the ``weibao`` parser (``handler`` returns an exit code)."""
    t = subparsers.add_parser("tickets", help="list, show and act on fault tickets (through the collector)")
    tsub = t.add_subparsers(dest="tickets_command", required=True, metavar="ACTION")
    p = tsub.add_parser("list", help="tickets, newest first")
    _common(p)
    p.add_argument("--state", help="comma-separated states: open, accepted, restored, closed")
    p.add_argument("--device")
    p.add_argument("--level", choices=["1", "2", "3"])
    p.add_argument("--since", help="opened at or after this ISO 8601 time (with an offset)")
    p.add_argument("--limit", type=int, default=500)
    p.set_defaults(handler=tickets_list)
    p = tsub.add_parser("show", help="one ticket with its clocks and history")
    _common(p)
    p.add_argument("id")
    p.set_defaults(handler=tickets_show)
    for action in ACTIONS:
        p = tsub.add_parser(action, help=f"{action} a ticket (you are the actor)")
        _common(p)
        p.add_argument("id")
        p.add_argument("--note", "-m", default="", help="what was done / said (restore and comment need one)")
        p.set_defaults(handler=tickets_action, action=action)

    m = subparsers.add_parser("maintenance", help="plan and list maintenance windows")
    msub = m.add_subparsers(dest="maintenance_command", required=True, metavar="ACTION")
    p = msub.add_parser("add", help="plan a window: faults inside it are planned time, not faults")
    _common(p)
    p.add_argument("--device", "-d", action="append", required=True, help="device name (repeatable)")
    p.add_argument("--start", required=True, help="ISO 8601 with an offset, e.g. 2026-11-28T22:00+08:00")
    p.add_argument("--end", required=True)
    p.add_argument("--reason", default="")
    p.set_defaults(handler=maintenance_add)
    p = msub.add_parser("list", help="planned windows")
    _common(p)
    p.add_argument("--device")
    p.set_defaults(handler=maintenance_list)


# -- output ----------------------------------------------------------------------------------------------
def _short(ts: str | None) -> str:
    if not ts:
        return "-"
    return datetime.fromisoformat(ts).strftime("%Y-%m-%d %H:%M")


def _table(rows: list[list[str]], head: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]]
    return "\n".join(lines)


def _clock(c: dict[str, Any]) -> str:
    if c.get("met_at"):
        return ("BREACHED " if c.get("breached") else "met ") + _short(c["met_at"])
    return ("BREACHED, due " if c.get("breached") else "due ") + _short(c.get("deadline"))


def format_ticket(t: dict[str, Any]) -> str:
    lines = [f"ticket {t['id']}  level {t['level']} {t.get('level_name', '')}  {t['state']}",
             f"device   {t['device']}", f"rule     {t['rule']}"]
    if t.get("affected"):
        lines.append(f"affected {', '.join(t['affected'])}")
    for key in ("opened_at", "accepted_at", "restored_at", "reported_at", "closed_at"):
        lines.append(f"{key.removesuffix('_at'):<9}{_short(t.get(key))}")
    for name, c in t.get("clocks", {}).items():
        lines.append(f"clock {name:<12}{_clock(c)}")
    for e in t.get("events", []):
        note = f"  {e['note']}" if e.get("note") else ""
        lines.append(f"  {_short(e['at'])}  {e['actor']:<10} {e['kind']}{note}")
    return "\n".join(lines)


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else text)


# -- handlers --------------------------------------------------------------------------------------------
def _run(_args: argparse.Namespace, work: Any) -> int:
    return run(work)


def tickets_list(args: argparse.Namespace) -> int:
    def work() -> None:
        params = {k: v for k, v in {"state": args.state, "device": args.device, "level": args.level,
                                    "since": args.since, "limit": args.limit}.items() if v is not None}
        data = _call(args, "GET", "/api/v1/tickets", params=params)
        rows = [[t["id"], str(t["level"]), t["state"], t["device"], t["rule"], _short(t["opened_at"]),
                 _clock(t["clocks"]["response"]), ",".join(t.get("affected", [])) or "-"] for t in data["tickets"]]
        _print(args, data, _table(rows, ["ID", "LEVEL", "STATE", "DEVICE", "RULE", "OPENED", "RESPONSE",
                                         "AFFECTED"]))
    return _run(args, work)


def tickets_show(args: argparse.Namespace) -> int:
    def work() -> None:
        data = _call(args, "GET", f"/api/v1/tickets/{args.id}")
        _print(args, data, format_ticket(data))
    return _run(args, work)


def tickets_action(args: argparse.Namespace) -> int:
    def work() -> None:
        data = _call(args, "POST", f"/api/v1/tickets/{args.id}/{args.action}", body={"note": args.note})
        _print(args, data, format_ticket(data))
    return _run(args, work)


def maintenance_add(args: argparse.Namespace) -> int:
    def work() -> None:
        data = _call(args, "POST", "/api/v1/maintenance", body={
            "devices": args.device, "start": args.start, "end": args.end, "reason": args.reason})
        _print(args, data, f"window {data['id']}: {', '.join(data['devices'])} "
                           f"{_short(data['start'])} - {_short(data['end'])} {data['reason']}")
    return _run(args, work)


def maintenance_list(args: argparse.Namespace) -> int:
    def work() -> None:
        params = {"device": args.device} if args.device else None
        data = _call(args, "GET", "/api/v1/maintenance", params=params)
        rows = [[str(w["id"] or "-"), _short(w["start"]), _short(w["end"]), ",".join(w["devices"]),
                 w["source"], w["reason"]] for w in data["windows"]]
        _print(args, data, _table(rows, ["ID", "START", "END", "DEVICES", "SOURCE", "REASON"]))
    return _run(args, work)
