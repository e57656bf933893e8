"""Generate a report: build its document, render the asked formats, keep the files (API, CLI and scheduler)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from weibao.collector.reports import daily
from weibao.collector.reports.archive import build_archive
from weibao.collector.reports.build import Builder, Sources
from weibao.collector.reports.periods import Kind, parse_period
from weibao.collector.reports.store import GeneratedReport, ReportStore
from weibao.core.inspection.i18n import Lang

log = logging.getLogger(__name__)

FORMATS = ("json", "html", "pdf", "xlsx")
DAILY_FORMATS = ("json", "html", "pdf")
MEDIA_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8", "pdf": "application/pdf",
               "zip": "application/zip", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def document_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=1).encode()


def render(doc: dict[str, Any], fmt: str, lang: Lang) -> bytes:
    """One format of the document (the renderers are imported when first needed: WeasyPrint is heavy)."""
    if fmt == "json":
        return document_bytes(doc)
    from weibao.collector.reports.html import render_html

    if fmt == "html":
        return render_html(doc, lang).encode()
    if fmt == "pdf":
        from weibao.collector.reports.pdf import html_to_pdf

        return html_to_pdf(render_html(doc, lang, for_print=True))
    if fmt == "xlsx":
        from weibao.collector.reports.xlsx import render_xlsx

        return render_xlsx(doc, lang)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def file_name(kind: str, key: str, fmt: str, lang: Lang) -> str:
    suffix = "" if fmt == "json" or lang == "zh" else f".{lang}"
    return f"{kind}-{key}{suffix}.{fmt}"


class ReportService:
    """Builds, renders and keeps reports."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.builder = Builder(sources)
        self.store: ReportStore = sources.reports

    def _daily(self, key: str, *, formats: Sequence[str], lang: Lang,
               now: datetime) -> tuple[dict[str, Any], GeneratedReport, dict[str, bytes]]:
        """The daily inspection from the stores (JSON, HTML, PDF: the inspection report has no tables to
        spread over sheets, so XLSX is not made)."""
        src = self.sources
        if src.inspection is None:
            raise ValueError("no inspection rules (inspection.yaml) were found: the daily inspection needs them")
        day = parse_period(Kind.DAILY, key).start.date()
        insp = daily.build(src.engine, src.inspection, day, src.daily_at, now)
        site = src.site()
        wanted = [f for f in formats if f in DAILY_FORMATS] or ["html"]
        rendered = {fmt: daily.render(insp, fmt, lang, site, day) for fmt in wanted}
        name = f"inspection-{day.isoformat()}"
        files = {fmt: (f"{name}{'' if fmt == 'json' or lang == 'zh' else '.' + lang}.{fmt}", data)
                 for fmt, data in rendered.items()}
        saved = self.store.save(Kind.DAILY.value, day.isoformat(), lang, files, now=now)
        return daily.inspection_json(insp, day=day), saved, rendered

    def archive(self, key: str, own: dict[str, tuple[str, bytes]], *, now: datetime) -> bytes:
        """The quarter's archive: its kept reports, its tickets, this report's own files, a manifest."""
        src = self.sources
        quarter = parse_period(Kind.QUARTERLY, key)
        tickets = src.tickets.find(opened_since=quarter.start, opened_before=quarter.end, limit=1_000_000)
        extra = {f"reports/quarterly/{key}/{name}": data for name, data in own.values()}
        return build_archive(quarter, self.store.list(), tickets, calendar=src.calendar, limits=src.rules.clocks,
                             now=now, extra=extra)

    def document(self, kind: Kind | str, key: str, *, now: datetime) -> dict[str, Any]:
        return self.builder.build(kind, key, now=now)

    def generate(self, kind: Kind | str, key: str, *, formats: Sequence[str], lang: Lang,
                 now: datetime) -> tuple[dict[str, Any], GeneratedReport, dict[str, bytes]]:
        """Build the document, render ``formats`` and keep them (a quarterly report adds its archive, format
        ``zip``); returns the document, the record, and the bytes of each format."""
        k = Kind(kind)
        if k is Kind.DAILY:
            return self._daily(key, formats=formats, lang=lang, now=now)
        doc = self.document(k, key, now=now)
        rendered = {fmt: render(doc, fmt, lang) for fmt in formats}
        period = doc["period"]["key"]
        files = {fmt: (file_name(k.value, period, fmt, lang), data) for fmt, data in rendered.items()}
        if k is Kind.QUARTERLY:
            files["zip"] = (f"archive-{period}.zip", self.archive(period, files, now=now))
        saved = self.store.save(k.value, period, lang, files, now=now)
        rendered = {fmt: data for fmt, (_, data) in files.items()}
        log.info("report %s %s (%s) written: %s", k.value, period, lang, ", ".join(formats))
        return doc, saved, rendered
