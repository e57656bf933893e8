"""XLSX from the report document with openpyxl: one sheet per table, numbers as numbers, times as dates.

Times are written as Excel dates in Asia/Shanghai (Excel keeps no time zone); durations in seconds and
availability in percent, as in the JSON, so each numeric cell equals the document's figure.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from weibao.core.inspection.i18n import Lang, t
from weibao.core.timeutil import SHANGHAI

AVAIL_COLUMNS = ("period_s", "down_s", "planned_s", "unknown_s", "availability_pct", "down_working_s",
                 "down_non_working_s", "availability_working_pct")
TICKET_COLUMNS = ("id", "device", "rule", "level", "state", "opened_at", "accepted_at", "restored_at",
                  "reported_at", "closed_at")
_HEAD = Font(bold=True)
_FILL = PatternFill("solid", fgColor="E8EEF7")


def _cell(value: Any) -> Any:
    """ISO times become naive local datetimes (Excel dates); text loses the control characters a workbook
    cannot hold (each becomes U+FFFD); everything else stays as it is."""
    if not isinstance(value, str):
        return value
    if len(value) >= 19 and value[4] == "-" and value[10] == "T":
        try:
            return datetime.fromisoformat(value).astimezone(SHANGHAI).replace(tzinfo=None)
        except ValueError:
            pass
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)


class _Book:
    def __init__(self, lang: Lang) -> None:
        self.wb = Workbook()
        self.lang = lang
        self._first = True

    def sheet(self, title: str, head: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self._first:
            ws = self.wb.active
            assert ws is not None
            ws.title = title[:31]
            self._first = False
        else:
            ws = self.wb.create_sheet(title[:31])
        ws.append(list(head))
        for c in ws[1]:
            c.font, c.fill = _HEAD, _FILL
        for r in rows:
            ws.append([_cell(v) for v in r])
        for col in ws.iter_cols(min_row=2):
            for c in col:
                if isinstance(c.value, datetime):
                    c.number_format = "yyyy-mm-dd hh:mm:ss"
                elif c.data_type == "f":
                    # text that begins with "=" (a note, a device's description) is kept as text: a report
                    # never carries a formula that the reader's spreadsheet would run
                    c.data_type = "s"
        for i, h in enumerate(head, start=1):
            ws.column_dimensions[get_column_letter(i)].width = max(10, min(40, len(str(h)) * 2 + 2))
        ws.freeze_panes = "A2"

    def save(self) -> bytes:
        buf = io.BytesIO()
        self.wb.save(buf)
        return buf.getvalue()


def render_xlsx(doc: dict[str, Any], lang: Lang = "zh") -> bytes:
    b = _Book(lang)

    def tr(key: str) -> str:
        return t(key, lang)

    p = doc["period"]
    overview: list[list[Any]] = [[tr("r.period"), p["key"]], [tr("r.start"), p["from"]], [tr("r.end"), p["to"]],
                                 [tr("r.as_of"), doc["as_of"]], [tr("r.generated_at"), doc["generated_at"]]]
    if "overall" in doc:
        overview += [[tr(f"r.{c}") + f" ({c})", doc["overall"][c]] for c in AVAIL_COLUMNS]
    b.sheet(tr("r.overview"), [tr("r.overview"), ""], overview)
    avail_head = [tr(f"r.{c}") + f" ({c})" for c in AVAIL_COLUMNS]
    if "devices" in doc:
        b.sheet(tr("r.availability_devices"), [tr("r.device"), tr("r.category"), *avail_head],
                [[d["device"], d["category"], *(d[c] for c in AVAIL_COLUMNS)] for d in doc["devices"]])
        b.sheet(tr("r.availability_categories"), [tr("r.category"), tr("r.devices_n"), *avail_head],
                [[c["category"], c["devices"], *(c[k] for k in AVAIL_COLUMNS)] for c in doc["categories"]])
    if "tickets" in doc:
        tk = doc["tickets"]
        b.sheet(tr("r.tickets"), [tr("r.level"), tr("r.opened"), tr("r.restored"), tr("r.closed")],
                [[int(lv), tk["opened_by_level"][lv], tk["restored_by_level"][lv], tk["closed_by_level"][lv]]
                 for lv in ("1", "2", "3")])
        b.sheet(tr("r.ticket_list"), [tr(f"r.{c}") if c not in ("id", "device", "rule", "level", "state")
                                      else c for c in TICKET_COLUMNS],
                [[i[c] for c in TICKET_COLUMNS] for i in tk["items"]])
        b.sheet(tr("r.clocks"), [tr("r.clock"), tr("r.met"), tr("r.breached"), tr("r.pending")],
                [[tr(f"r.clock.{n}"), c["met"], c["breached"], c["pending"]] for n, c in doc["clocks"].items()])
    if "daily" in doc:
        b.sheet(tr("r.trend"), ["date", tr("r.availability_pct"), tr("r.down_s"), tr("r.tickets_opened")],
                [[datetime.fromisoformat(d["date"]), d["availability_pct"], d["down_s"], d["tickets_opened"]]
                 for d in doc["daily"]])
    if "months" in doc:
        b.sheet(tr("r.months"), [tr("r.month"), *avail_head, tr("r.tickets_opened")],
                [[m["month"], *(m[c] for c in AVAIL_COLUMNS), m["tickets_opened"]] for m in doc["months"]])
    if "resources" in doc:
        rows = [[tr(f"r.metric.{m}"), r["device"], " ".join(r["labels"].values()), r["peak"], r["p95"]]
                for m, v in doc["resources"]["metrics"].items() for r in v["top"]]
        b.sheet(tr("r.resources")[:31], ["metric", tr("r.device"), tr("r.label"), tr("r.peak"), tr("r.p95")], rows)
    _optional(b, doc, "ups", tr("r.ups"), [tr("r.device"), tr("r.on_battery_s"), tr("r.traps"), tr("r.charge_min")],
              lambda u: [u["device"], u["on_battery_s"], u["traps"], u["battery_charge_min_pct"]])
    if "config_changes" in doc:
        b.sheet(tr("r.config_changes"), [tr("r.device"), tr("r.at"), "added", "removed"],
                [[c["device"], c["at"], c["added"], c["removed"]] for c in doc["config_changes"]["items"]])
    _optional(b, doc, "maintenance", tr("r.maintenance"), [tr("r.device"), tr("r.start"), tr("r.end"), tr("r.reason")],
              lambda w: [", ".join(w["devices"]), w["start"], w["end"], w["reason"]])
    if "gaps" in doc:
        b.sheet(tr("r.gaps")[:31], [tr("r.device"), tr("r.from"), tr("r.to"), tr("r.duration")],
                [[g["device"], g["from"], g["to"], g["seconds"]] for g in doc["gaps"]["longest"]])
    if "notes" in doc:
        b.sheet(tr("r.notes"), [tr("r.notes"), ""], [[tr("r.work_done"), doc["notes"]["work_done"] or ""],
                                                     [tr("r.plan_next_week"), doc["notes"]["plan_next_week"] or ""]])
    if "analysis" in doc:
        b.sheet(tr("r.analysis"), [tr("r.analysis"), ""],
                [[tr(f"r.{f}"), doc["analysis"][f] or ""] for f in ("cause", "measures", "prevention")])
    if "timeline" in doc:
        b.sheet(tr("r.timeline"), [tr("r.at"), tr("r.actor"), tr("r.action"), tr("r.note")],
                [[e["at"], e["actor"], e["kind"], e["note"]] for e in doc["timeline"]])
    return b.save()


def _optional(b: _Book, doc: dict[str, Any], key: str, title: str, head: Sequence[str],
              row: Callable[[dict[str, Any]], list[Any]]) -> None:
    if key in doc:
        b.sheet(title, head, [row(x) for x in doc[key]])
