"""``weibao report ...``: contract reports from the collector's API, written to a folder.

    weibao report daily|weekly|monthly|quarterly|annual --period 2026-12-04|2026-W48|2026-11|2026-Q4|2026
                  [--format html,pdf,xlsx,json] [--lang zh|en] --out DIR
    weibao report fault TICKET_ID [--format ...] [--lang zh|en] --out DIR
    weibao report notes weekly 2026-W48 [--work-done TEXT] [--plan TEXT]
    weibao report notes fault TICKET_ID [--cause TEXT] [--measures TEXT] [--prevention TEXT]
    weibao report list [--kind K] [--json]

Every command takes ``--collector URL`` and ``--token-file FILE`` as the tickets commands do. Files are
named ``<kind>-<period>[.en].<format>`` (the JSON is the document the API answers) and written mode 0640.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from weibao.collector.commands._api import CliError, call, common, request, run
from weibao.core.files import write_atomic

FORMATS = ("html", "pdf", "xlsx", "json")
CHOICES = (*FORMATS, "zip")  # zip: the archive of a quarter
PERIODIC = ("daily", "weekly", "monthly", "quarterly", "annual")
FILE_MODE = 0o640


def _formats(text: str) -> list[str]:
    chosen = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in chosen if f not in CHOICES]
    if bad or not chosen:
        raise argparse.ArgumentTypeError(f"formats are {', '.join(CHOICES)} (comma-separated), not {text!r}")
    return list(dict.fromkeys(chosen))


def register(subparsers: Any) -> None:
    r = subparsers.add_parser("report", help="weekly, monthly, quarterly, annual and fault reports (through the "
                                             "collector)")
    sub = r.add_subparsers(dest="report_command", required=True, metavar="KIND")
    for kind in PERIODIC:
        what = "the daily inspection of one day (json, html, pdf)" if kind == "daily" else f"the {kind} report"
        p = sub.add_parser(kind, help=what)
        common(p)
        p.add_argument("--period", required=True, help="2026-12-04 | 2026-W48 | 2026-11 | 2026-Q4 | 2026")
        _outputs(p)
        p.set_defaults(handler=fetch, kind=kind)
    p = sub.add_parser("fault", help="the fault analysis report of one ticket")
    common(p)
    p.add_argument("ticket")
    _outputs(p)
    p.set_defaults(handler=fetch, kind="fault")
    p = sub.add_parser("list", help="the reports generated so far")
    common(p)
    p.add_argument("--kind", choices=[*PERIODIC, "fault"])
    p.set_defaults(handler=list_reports)
    n = sub.add_parser("notes", help="the engineers' text of a weekly or fault report")
    nsub = n.add_subparsers(dest="notes_kind", required=True, metavar="KIND")
    p = nsub.add_parser("weekly", help="this week's work and next week's plan")
    common(p)
    p.add_argument("period")
    p.add_argument("--work-done")
    p.add_argument("--plan", dest="plan_next_week")
    p.set_defaults(handler=notes, fields=("work_done", "plan_next_week"))
    p = nsub.add_parser("fault", help="cause, measures taken and prevention of a fault")
    common(p)
    p.add_argument("period", metavar="TICKET_ID")
    p.add_argument("--cause")
    p.add_argument("--measures")
    p.add_argument("--prevention")
    p.set_defaults(handler=notes, fields=("cause", "measures", "prevention"))


def _outputs(p: argparse.ArgumentParser) -> None:
    # a month of a large site takes the collector a while to read, classify and render (bench/reports.py)
    p.set_defaults(timeout=600.0)
    p.add_argument("--format", type=_formats, default=list(FORMATS),
                   help="html,pdf,xlsx,json (default: all); zip: a quarter's archive")
    p.add_argument("--lang", choices=["zh", "en"], default="zh")
    p.add_argument("--out", type=Path, required=True, help="folder for the files")


def fetch(args: argparse.Namespace) -> int:
    def work() -> None:
        key_param = {"ticket": args.ticket} if args.kind == "fault" else {"period": args.period}
        written = []
        for fmt in args.format:
            r = request(args, "GET", f"/api/v1/reports/{args.kind}", params={**key_param, "format": fmt,
                                                                              "lang": args.lang})
            name = _file_name(r.headers.get("content-disposition", ""), args, fmt)
            args.out.mkdir(parents=True, exist_ok=True, mode=0o750)
            path = args.out / name
            if fmt == "json":
                write_atomic(path, json.dumps(r.json(), ensure_ascii=False, indent=1), mode=FILE_MODE)
            else:
                _write_bytes(path, r.content)
            written.append(path)
        for path in written:
            print(path)
    return run(work)


def _file_name(disposition: str, args: argparse.Namespace, fmt: str) -> str:
    _, sep, rest = disposition.partition('filename="')
    if sep:
        name = rest.split('"', 1)[0]
        if name and "/" not in name and not name.startswith("."):
            return name
    key = args.ticket if args.kind == "fault" else args.period
    suffix = "" if fmt == "json" or args.lang == "zh" else f".{args.lang}"
    return f"{args.kind}-{key}{suffix}.{fmt}"


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(FILE_MODE)
    tmp.replace(path)


def list_reports(args: argparse.Namespace) -> int:
    def work() -> None:
        data = call(args, "GET", "/api/v1/reports", params={"kind": args.kind} if args.kind else None)
        if args.json:
            print(json.dumps(data, ensure_ascii=False, indent=2))
            return
        for g in data["reports"]:
            print(f"{g['kind']:<10} {g['period']:<16} {g['lang']:<3} {g['generated_at'][:16]}  "
                  f"{','.join(g['formats'])}")
    return run(work)


def notes(args: argparse.Namespace) -> int:
    def work() -> None:
        body = {f: getattr(args, f) for f in args.fields if getattr(args, f) is not None}
        if not body:
            raise CliError(f"give at least one of {', '.join('--' + f.replace('_', '-') for f in args.fields)}", 2)
        data = request(args, "PUT", f"/api/v1/reports/{args.notes_kind}/{args.period}/notes", body=body).json()
        print(json.dumps(data, ensure_ascii=False, indent=2))
    return run(work)
