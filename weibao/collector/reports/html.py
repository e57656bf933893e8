"""Render a report document as one self-contained HTML page (zh by default, en on request).

Only the document is read: the PDF is made from this page and the XLSX from the same tables, so the
figures are the same in every format. Durations show as ``H:MM:SS``, availability with three decimals.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import jinja2

from weibao.collector.reports import charts
from weibao.core.inspection.i18n import LANGS, Lang, number, t
from weibao.core.timeutil import SHANGHAI

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("weibao.collector.reports", "templates"),
    autoescape=True,  # device names, rules and engineers' notes are text, never markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def hms(seconds: float | None) -> str:
    """``H:MM:SS`` (hours may pass 24); "—" for None."""
    if seconds is None or math.isnan(seconds):
        return "—"
    s = round(seconds)
    sign = "-" if s < 0 else ""
    h, rest = divmod(abs(s), 3600)
    return f"{sign}{h}:{rest // 60:02d}:{rest % 60:02d}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}%"


def when(text: str | None) -> str:
    if not text:
        return "—"
    return datetime.fromisoformat(text).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _charts(doc: dict[str, Any], lang: Lang) -> dict[str, str]:
    out: dict[str, str] = {}
    daily = doc.get("daily") or []
    if daily:
        labels = [d["date"][5:] for d in daily]
        avail = [d["availability_pct"] for d in daily]
        known = [v for v in avail if v is not None]
        lo = min(90.0, math.floor(min(known))) if known else 90.0
        out["availability"] = charts.data_uri(charts.bars(t("r.chart.availability", lang), labels, avail, lo=lo,
                                                          hi=100.0))
        out["tickets"] = charts.data_uri(charts.bars(t("r.chart.tickets", lang), labels,
                                                     [float(d["tickets_opened"]) for d in daily]))
    months = doc.get("months") or []
    if months:
        labels = [m["month"] for m in months]
        avail = [m["availability_pct"] for m in months]
        known = [v for v in avail if v is not None]
        lo = min(90.0, math.floor(min(known))) if known else 90.0
        out["availability"] = charts.data_uri(charts.bars(t("r.availability_pct", lang), labels, avail, lo=lo,
                                                          hi=100.0))
        out["tickets"] = charts.data_uri(charts.bars(t("r.tickets_opened", lang), labels,
                                                     [float(m["tickets_opened"]) for m in months]))
    samples = (doc.get("samples") or {}).get("series") or []
    for k, s in enumerate(samples):
        pts = [(datetime.fromisoformat(p[0]).timestamp(), float(p[1])) for p in s["points"]]
        ticks = [(pts[i][0], when(s["points"][i][0])[11:]) for i in range(0, len(pts), max(1, len(pts) // 8))]
        out[f"sample{k}"] = charts.data_uri(charts.lines(f"{s['device']} {s['metric']} ({s['value']})",
                                                         [(s["metric"], pts)], x_labels=ticks))
    return out


def render_html(doc: dict[str, Any], lang: Lang = "zh", *, for_print: bool = False) -> str:
    """The report page: inline CSS, charts as data URIs, nothing loaded from elsewhere."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}")

    def tr(key: str, **values: Any) -> str:
        return t(key, lang, **values)

    context = {
        "doc": doc, "lang": lang, "html_lang": "en" if lang == "en" else "zh-CN", "t": tr, "hms": hms,
        "pct": pct, "when": when, "num": number, "charts": _charts(doc, lang), "for_print": for_print,
        "title": tr(f"report.{doc['kind']}"),
    }
    return _ENV.get_template("report.html.j2").render(context)
