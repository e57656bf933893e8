"""Reports: generated from what the collector stores, in JSON, HTML, PDF or XLSX; an engineer's token.

    GET /api/v1/reports                          ?kind=   what was generated (newest first)
    GET /api/v1/reports/{kind}                   ?period=2026-12-04|2026-W48|2026-11|2026-Q4|2026 (fault: ?ticket=ID)
                                                 &format=json|html|pdf|xlsx (zip: a quarter's archive) &lang=zh|en
    PUT /api/v1/reports/weekly/{period}/notes    {"work_done": ..., "plan_next_week": ...}
    PUT /api/v1/reports/fault/{ticket}/notes     {"cause": ..., "measures": ..., "prevention": ...}

A report asked for is built, rendered and kept (it is then listed). 404 for an unknown kind or ticket,
422 naming the field for a malformed period, format or language; nothing is written then.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from weibao.collector.contract.calendar import local
from weibao.collector.errors import Refused
from weibao.collector.http.deps import NO_STORE, REPORT_CSP, Ctx, Engineer, json_response, read_body
from weibao.collector.reports.build import UnknownTicket
from weibao.collector.reports.periods import Kind, PeriodError, parse_period
from weibao.collector.reports.service import DAILY_FORMATS, FORMATS, MEDIA_TYPES, ReportService
from weibao.collector.reports.store import GeneratedReport
from weibao.collector.validate import bad_field, parse
from weibao.core.inspection.i18n import LANGS

router = APIRouter()
MAX_BODY = 256 * 1024
_TEXT = Field(None, max_length=20_000)


class WeeklyNotes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    work_done: str | None = _TEXT
    plan_next_week: str | None = _TEXT


class FaultNotes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cause: str | None = _TEXT
    measures: str | None = _TEXT
    prevention: str | None = _TEXT


def now() -> datetime:
    return local(datetime.now(UTC))


def listing(g: GeneratedReport) -> dict[str, Any]:
    return {"kind": g.kind, "period": g.period, "lang": g.lang, "generated_at": g.generated_at.isoformat(),
            "formats": list(g.formats),
            "files": [{"format": f.format, "name": f.path.name, "size": f.size, "sha256": f.sha256} for f in g.files]}


def _service(ctx: Ctx) -> ReportService:
    return ctx.reports.service


def _kind(text: str) -> Kind:
    try:
        return Kind(text)
    except ValueError as exc:
        raise Refused(404, "not_found", f"no report kind {text!r}; one of {', '.join(k.value for k in Kind)}") from exc


@router.get("/api/v1/reports")
async def list_reports(request: Request, ctx: Ctx, _who: Engineer) -> Response:
    kind = request.query_params.get("kind")
    if kind is not None:
        _kind(kind)
    found = await run_in_threadpool(_service(ctx).store.list, kind=kind)
    return json_response({"reports": [listing(g) for g in found]})


@router.get("/api/v1/reports/{kind}")
async def get_report(request: Request, ctx: Ctx, _who: Engineer, kind: str) -> Response:
    k = _kind(kind)
    q = request.query_params
    fmt = q.get("format", "json")
    if fmt not in FORMATS and not (fmt == "zip" and k is Kind.QUARTERLY):
        raise bad_field("format", f"one of {', '.join(FORMATS)} (and zip, the archive, for a quarter)")
    if k is Kind.DAILY and fmt not in DAILY_FORMATS:
        raise bad_field("format", f"a daily inspection is one of {', '.join(DAILY_FORMATS)}")
    lang = q.get("lang", "zh")
    if lang not in LANGS:
        raise bad_field("lang", f"one of {', '.join(LANGS)}")
    if k is Kind.FAULT:
        key = q.get("ticket") or q.get("period")
        if not key:
            raise bad_field("ticket", "the ticket id of the fault")
    else:
        key = q.get("period")
        if not key:
            raise bad_field("period", "required")
        try:
            parse_period(k, key)
        except PeriodError as exc:
            raise bad_field("period", str(exc)) from exc
    svc = _service(ctx)
    try:
        doc, saved, rendered = await run_in_threadpool(
            lambda: svc.generate(k, key, formats=[] if fmt == "zip" else [fmt], lang=lang, now=now()))
    except UnknownTicket as exc:
        raise Refused(404, "not_found", f"no ticket {exc.args[0]}") from exc
    if fmt == "json":
        return json_response(doc)
    name = (f"archive-{doc['period']['key']}.zip" if fmt == "zip"
            else next(f.path.name for f in saved.files if f.format == fmt))
    disposition = "inline" if fmt == "html" else "attachment"
    headers = {**NO_STORE, "Content-Disposition": f'{disposition}; filename="{name}"',
               "X-Content-Type-Options": "nosniff"}
    if fmt == "html":  # shown as the console shows it: its own styles, never a script
        headers["Content-Security-Policy"] = REPORT_CSP
    return Response(rendered[fmt], media_type=MEDIA_TYPES[fmt], headers=headers)


async def _put_notes(request: Request, ctx: Ctx, who: str, kind: str, key: str,
                     model: type[WeeklyNotes] | type[FaultNotes]) -> Response:
    body = parse(await read_body(request, MAX_BODY) or b"{}", model)
    fields = body.model_dump(exclude_unset=True)
    if not fields:
        raise bad_field("(body)", f"give at least one of {', '.join(model.model_fields)}")
    store = _service(ctx).store
    return json_response(await run_in_threadpool(store.put_notes, kind, key, fields, who))


@router.put("/api/v1/reports/weekly/{period}/notes")
async def put_weekly_notes(request: Request, ctx: Ctx, who: Engineer, period: str) -> Response:
    try:
        key = parse_period(Kind.WEEKLY, period).key
    except PeriodError as exc:
        raise bad_field("period", str(exc)) from exc
    return await _put_notes(request, ctx, who.name, "weekly", key, WeeklyNotes)


@router.put("/api/v1/reports/fault/{ticket_id}/notes")
async def put_fault_notes(request: Request, ctx: Ctx, who: Engineer, ticket_id: str) -> Response:
    found = await run_in_threadpool(ctx.contract.store.get, ticket_id)
    if found is None:
        raise Refused(404, "not_found", f"no ticket {ticket_id}")
    return await _put_notes(request, ctx, who.name, "fault", ticket_id, FaultNotes)
