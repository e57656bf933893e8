"""``weibao calendar add-year`` and ``weibao calendar show``: keep the working calendar ahead of the clocks."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from weibao.core.errors import ConfigError


def register(sub: Any) -> None:
    p = sub.add_parser("calendar", help="add a year of holidays from the State Council's notice; show coverage")
    csub = p.add_subparsers(dest="calendar_command", required=True, metavar="ACTION")
    a = csub.add_parser("add-year", help="add a year's holidays and make-up days to a site calendar file")
    a.add_argument("file", type=Path, metavar="FILE", help="the site calendar file (created when missing)")
    a.add_argument("--notice", type=Path, required=True,
                   help="the notice's text (国务院办公厅关于YYYY年部分节假日安排的通知), '-' for standard input")
    a.add_argument("--year", type=int, default=None, help="the year (default: from the notice's title)")
    a.add_argument("--replace", action="store_true", help="replace the year where the file or the shipped data has it")
    a.add_argument("--dry-run", action="store_true", help="show what would be added; write nothing")
    a.add_argument("--config", type=Path, default=None,
                   help="collector configuration: warn when FILE is not among its contract.calendar files")
    a.set_defaults(handler=run_add_year)
    s = csub.add_parser("show", help="how far the working calendar reaches; one year's days off and make-up days")
    s.add_argument("files", type=Path, nargs="*", metavar="FILE", help="site calendar files (default: the config's)")
    s.add_argument("--config", type=Path, default=None, help="collector configuration naming the site files")
    s.add_argument("--year", type=int, default=None, help="list this year's holidays and make-up working days")
    s.set_defaults(handler=run_show)


def _problems(exc: ConfigError) -> int:
    for p in exc.problems:
        print(p, file=sys.stderr)
    print(f"{len(exc.problems)} problem(s); nothing written", file=sys.stderr)
    return 1


def _weekday(d: date) -> str:
    return d.strftime("%a")


def run_add_year(args: argparse.Namespace) -> int:
    from weibao.collector.contract.calendar_edit import add_year, write_checked
    from weibao.collector.contract.notice import notice_year, parse_notice

    name = "<stdin>" if str(args.notice) == "-" else str(args.notice)
    try:
        text = sys.stdin.read() if str(args.notice) == "-" else args.notice.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"weibao calendar: cannot read {name}: {exc}", file=sys.stderr)
        return 2
    year = args.year or notice_year(text)
    if year is None:
        print(f"weibao calendar: {name} names no year (关于YYYY年...): give --year", file=sys.stderr)
        return 2
    try:
        notice = parse_notice(text, year=year, file=name)
        new_text = add_year(args.file, notice, replace=args.replace,
                            source=f"{year}: from the State Council's notice, added {date.today().isoformat()}")
    except ConfigError as exc:
        return _problems(exc)
    print(f"{year}, from {name}:")
    for item in notice.items:
        first, last = item.days_off[0], item.days_off[-1]
        span = f"{first} ({_weekday(first)})" + (f" - {last} ({_weekday(last)})" if last != first else "")
        work = ", ".join(f"{d} ({_weekday(d)})" for d in item.working_days) or "-"
        print(f"  {item.label:<36} off {span}, {len(item.days_off)} day(s); make-up working days: {work}")
    if args.dry_run:
        print(f"--dry-run: {args.file} not written")
        return 0
    try:
        write_checked(args.file, new_text)
    except ConfigError as exc:
        return _problems(exc)
    print(f"wrote {args.file}; restart the collector to use it (systemctl restart weibao-collector)")
    return _warn_unlisted(args.file, args.config)


def _warn_unlisted(path: Path, config: Path | None) -> int:
    if config is None:
        return 0
    from weibao.collector.config import load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        return _problems(exc)
    if not any(p.absolute() == path.absolute() for p in cfg.contract.calendar):
        print(f"warning: {path} is not in contract.calendar of {config}: the collector does not read it",
              file=sys.stderr)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from weibao.collector.config import load_config
    from weibao.collector.contract.calendar_files import load_calendar
    from weibao.core.timeutil import SHANGHAI

    try:
        files = list(args.files) or (list(load_config(args.config).contract.calendar) if args.config else [])
        cal = load_calendar(*files)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 1
    today = datetime.now(UTC).astimezone(SHANGHAI).date()
    years = sorted(cal.covered_years)
    until = cal.covered_until(today)
    print(f"holiday data for {years[0]}-{years[-1]}" if years else "no holiday data",
          f"(shipped{', ' + ', '.join(map(str, files)) if files else ''})")
    if until is None:
        print(f"{today.year} has no holiday data: Monday-Friday count as working days")
    else:
        print(f"known until {until}: {(until - today).days + 1} day(s) from today, {today}")
    if args.year is not None:
        for d in (date(args.year, 1, 1).toordinal() + i for i in range(366)):
            day = date.fromordinal(d)
            if day.year != args.year:
                break
            name = cal.holiday_name(day)
            if name is not None:
                kind = "off" if not cal.is_working_day(day) else "working"
                print(f"  {day} {_weekday(day)}  {kind:<7} {name}")
    return 0
