"""The quarterly archive: every report and every ticket record of a quarter in one zip, with a SHA-256 manifest.

Members: ``reports/<kind>/<period>/<file>`` for each kept report file whose period lies in the quarter
(weekly reports by their Monday, fault reports by their ticket's opening), ``tickets/<id>.json`` for
each ticket opened in the quarter (the API's shape, with its events and its clocks as of the archive),
and ``MANIFEST.sha256`` (``sha256sum -c`` reads it) listing every other member.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from datetime import datetime

from weibao.collector.contract.calendar import WorkingCalendar
from weibao.collector.contract.rules import ClockRules
from weibao.collector.reports.periods import Kind, Period, PeriodError, parse_period
from weibao.collector.reports.store import GeneratedReport
from weibao.collector.tickets.model import Ticket
from weibao.collector.tickets.views import clocks_by_name, ticket_clocks, ticket_json

MANIFEST = "MANIFEST.sha256"
_FIXED = (1980, 1, 1, 0, 0, 0)  # member times fixed: the same content gives the same archive


def _inside(report: GeneratedReport, quarter: Period, fault_opened: dict[str, datetime]) -> bool:
    if report.kind == Kind.FAULT.value:
        opened = fault_opened.get(report.period)
        return opened is not None and quarter.start <= opened < quarter.end
    try:
        p = parse_period(report.kind, report.period)
    except PeriodError:
        return False
    return quarter.start <= p.start and p.end <= quarter.end


def build_archive(quarter: Period, reports: Iterable[GeneratedReport], tickets: Iterable[Ticket], *,
                  calendar: WorkingCalendar, limits: ClockRules, now: datetime,
                  extra: dict[str, bytes] | None = None) -> bytes:
    """The zip of the quarter; ``extra``: members added as given (the quarterly report's own files)."""
    members: dict[str, bytes] = {}
    mine = [t for t in tickets if quarter.start <= t.opened_at < quarter.end]
    opened = {t.id: t.opened_at for t in mine}
    for r in reports:
        if not _inside(r, quarter, opened):
            continue
        for f in r.files:
            if f.path.is_file():
                members[f"reports/{r.kind}/{r.period}/{f.path.name}"] = f.path.read_bytes()
    for t in sorted(mine, key=lambda t: t.id):
        clocks = clocks_by_name(ticket_clocks(t, calendar=calendar, limits=limits, now=now))
        members[f"tickets/{t.id}.json"] = json.dumps(ticket_json(t, clocks), ensure_ascii=False, indent=1).encode()
    for name, data in (extra or {}).items():
        members[name] = data
    manifest = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(members.items()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in sorted(members.items()):
            z.writestr(zipfile.ZipInfo(name, _FIXED), data, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr(zipfile.ZipInfo(MANIFEST, _FIXED), manifest.encode())
    return buf.getvalue()
