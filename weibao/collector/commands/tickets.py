"""``weibao tickets ...`` and ``weibao maintenance ...``: the tickets API from the command line (HTTP, httpx).

    weibao tickets list [--state open,accepted] [--device D] [--level N] [--kind K] [--since ISO] [--json]
    weibao tickets show ID [--json]
    weibao tickets open --kind fault|guidance|request --summary TEXT [--device D] [--level N] [--note TEXT]
    weibao tickets ACTION ID [--note TEXT] [--json]      every action of tickets/actions.py (accept, restore,
                                                         report, solution, pause, resume, dispatch, onsite,
                                                         comment, close; feedback and confirm for the client)
    weibao maintenance add --device D [--device D2 ...] --start ISO --end ISO [--reason TEXT] [--json]
    weibao maintenance list [--device D] [--json]

Every command takes ``--collector URL`` (default ``$WEIBAO_COLLECTOR``, else http://127.0.0.1:8470) and
``--token-file FILE`` (default ``$WEIBAO_TOKEN_FILE``) holding an engineer's (or the client's) token,
readable by its owner alone (as the agent's). The token goes over ``https://`` (``--ca-file``, else the
system's trust store; ``--client-cert``/``--client-key`` when the collector asks for one), or ``http://`` to
this machine only unless ``--allow-insecure-http``. Every value printed in a table has its control
characters escaped: what the collector answers may come from any agent. Exit status: 0 done, 1 the
collector refused (its reason is printed), 2 a usage or connection problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any
from urllib.parse import quote

from weibao.collector.commands._api import call as _call
from weibao.collector.commands._api import common as _common
from weibao.collector.commands._api import run
from weibao.collector.tickets.actions import ACTIONS
from weibao.collector.tickets.model import TicketKind
from weibao.core.text import escape_json, printable


def register(subparsers: Any) -> None:
    """Add ``tickets`` and ``maintenance`` to the ``weibao`` parser (``handler`` returns an exit code)."""
    t = subparsers.add_parser("tickets", help="list, show and act on fault tickets (through the collector)")
    tsub = t.add_subparsers(dest="tickets_command", required=True, metavar="ACTION")
    p = tsub.add_parser("list", help="tickets, newest first")
    _common(p)
    p.add_argument("--state", help="comma-separated states: open, accepted, restored, closed")
    p.add_argument("--device")
    p.add_argument("--level", choices=["1", "2", "3"])
    p.add_argument("--kind", choices=[k.value for k in TicketKind])
    p.add_argument("--since", help="opened at or after this ISO 8601 time (with an offset)")
    p.add_argument("--limit", type=int, default=500)
    p.set_defaults(handler=tickets_list)
    p = tsub.add_parser("show", help="one ticket with its clocks and history")
    _common(p)
    p.add_argument("id")
    p.set_defaults(handler=tickets_show)
    p = tsub.add_parser("open", help="submit a request: a fault a user reports, guidance, a general request")
    _common(p)
    p.add_argument("--kind", choices=[k.value for k in TicketKind], default=TicketKind.FAULT.value)
    p.add_argument("--summary", "-s", required=True, help="the subject, in a line")
    p.add_argument("--note", "-m", default="", help="the details")
    p.add_argument("--device", default="", help="the device it concerns, if any")
    p.add_argument("--level", type=int, choices=[1, 2, 3], default=3, help="an engineer may set 1 or 2")
    p.set_defaults(handler=tickets_open)
    for name, spec in ACTIONS.items():
        p = tsub.add_parser(name, help=spec.what)
        _common(p)
        p.add_argument("id")
        p.add_argument("--note", "-m", default="",
                       help="what was done / said" + (" (required)" if spec.note_required else ""))
        p.set_defaults(handler=tickets_action, action=name)

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
    try:
        return datetime.fromisoformat(ts).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return printable(ts)


def _table(rows: list[list[str]], head: list[str]) -> str:
    """Aligned columns; every cell with its control characters escaped (names and notes come from afar)."""
    cells = [[printable(c) for c in r] for r in [head, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _clock(c: dict[str, Any]) -> str:
    if c.get("met_at"):
        return ("BREACHED " if c.get("breached") else "met ") + _short(c["met_at"])
    return ("BREACHED, due " if c.get("breached") else "due ") + _short(c.get("deadline"))


def format_ticket(t: dict[str, Any]) -> str:
    p = printable
    lines = [f"ticket {p(t['id'])}  level {p(t['level'])} {p(t.get('level_name', ''))}  {p(t['state'])}"
             + ("  PAUSED" if t.get("paused") else ""),
             f"device   {p(t['device'] or '-')}", f"rule     {p(t['rule'])}"]
    if t.get("summary"):
        lines.append(f"summary  {p(t['summary'])}  (by {p(t.get('opened_by', '-'))})")
    if t.get("affected"):
        lines.append(f"affected {', '.join(p(a) for a in t['affected'])}")
    for key in ("opened_at", "accepted_at", "restored_at", "reported_at", "solution_at", "dispatched_at",
                "onsite_at", "closed_at"):
        if key in ("opened_at", "accepted_at", "restored_at", "reported_at", "closed_at") or t.get(key):
            lines.append(f"{key.removesuffix('_at'):<9}{_short(t.get(key))}")
    for pause in t.get("pauses", []):
        lines.append(f"paused   {_short(pause['start'])} - {_short(pause['end'])}  {p(pause['reason'])}")
    for name, c in t.get("clocks", {}).items():
        if c.get("deadline"):
            lines.append(f"clock {p(name):<12}{_clock(c)}")
    for e in t.get("events", []):
        note = f"  {p(e['note'])}" if e.get("note") else ""
        lines.append(f"  {_short(e['at'])}  {p(e['actor']):<10} {p(e['kind'])}{note}")
    return "\n".join(lines)


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    # JSON escapes C0 controls itself; C1 controls, DEL and bidi overrides are escaped the same way
    print(escape_json(json.dumps(data, ensure_ascii=False, indent=2)) if args.json else text)


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
        data = _call(args, "GET", f"/api/v1/tickets/{quote(args.id, safe='')}")
        _print(args, data, format_ticket(data))
    return _run(args, work)


def tickets_open(args: argparse.Namespace) -> int:
    def work() -> None:
        data = _call(args, "POST", "/api/v1/tickets", body={
            "kind": args.kind, "summary": args.summary, "note": args.note, "device": args.device,
            "level": args.level})
        _print(args, data, format_ticket(data))
    return _run(args, work)


def tickets_action(args: argparse.Namespace) -> int:
    def work() -> None:
        data = _call(args, "POST", f"/api/v1/tickets/{quote(args.id, safe='')}/{args.action}",
                     body={"note": args.note})
        _print(args, data, format_ticket(data))
    return _run(args, work)


def maintenance_add(args: argparse.Namespace) -> int:
    def work() -> None:
        data = _call(args, "POST", "/api/v1/maintenance", body={
            "devices": args.device, "start": args.start, "end": args.end, "reason": args.reason})
        _print(args, data, printable(f"window {data['id']}: {', '.join(data['devices'])} "
                                     f"{_short(data['start'])} - {_short(data['end'])} {data['reason']}"))
        if data.get("unregistered"):
            print(printable(f"note: no agent has registered {', '.join(data['unregistered'])} yet"),
                  file=sys.stderr)
    return _run(args, work)


def maintenance_list(args: argparse.Namespace) -> int:
    def work() -> None:
        params = {"device": args.device} if args.device else None
        data = _call(args, "GET", "/api/v1/maintenance", params=params)
        rows = [[str(w["id"] or "-"), _short(w["start"]), _short(w["end"]), ",".join(w["devices"]),
                 w["source"], w["reason"]] for w in data["windows"]]
        _print(args, data, _table(rows, ["ID", "START", "END", "DEVICES", "SOURCE", "REASON"]))
    return _run(args, work)
