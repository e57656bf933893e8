"""Maintenance windows: the list (planned in the console or the API, and those of the maintenance file),
add, cancel. Times are entered and shown in contract time (Asia/Shanghai)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from weibao.collector.access import audit
from weibao.collector.access.sessions import Session
from weibao.collector.console.render import page
from weibao.collector.console.web import SECURITY_HEADERS, Denied, Maintainer, form
from weibao.collector.http.deps import client_address, context
from weibao.collector.http.routers.tickets import now as contract_now
from weibao.collector.validate import QUERY_MAX, QUERY_MIN
from weibao.core.timeutil import SHANGHAI

router = APIRouter()
MAX_DEVICES = 10_000


def _windows(request: Request, now: datetime) -> dict[str, Any]:
    svc = context(request).contract
    stored = svc.store.windows()
    files = list(svc.files.windows)
    return {"stored": sorted(stored, key=lambda s: s.window.start, reverse=True),
            "files": sorted(files, key=lambda w: w.start, reverse=True), "now": now}


async def _show(request: Request, who: Session, *, status: int = 200, error: str = "",
                values: dict[str, str] | None = None) -> Response:
    listing = await run_in_threadpool(_windows, request, contract_now())
    return page(request, who, "maintenance.html", status=status, error=error, values=values or {}, **listing)


@router.get("/maintenance")
async def maintenance(request: Request, who: Maintainer) -> Response:
    return await _show(request, who)


def _local(text: str, field: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{field}: not a date and time") from exc
    try:
        t = t.replace(tzinfo=SHANGHAI) if t.tzinfo is None else t.astimezone(SHANGHAI)
        inside = QUERY_MIN <= t < QUERY_MAX
    except OverflowError:  # year 1 or 9999 moved into another offset
        inside = False
    if not inside:
        raise ValueError(f"{field}: outside {QUERY_MIN.date()} .. {QUERY_MAX.date()}")
    return t


@router.post("/maintenance")
async def add(request: Request, who: Maintainer) -> Response:
    data = await form(request, who)
    values = {k: str(data.get(k) or "").strip() for k in ("devices", "start", "end", "reason")}
    ctx = context(request)
    devices = list(dict.fromkeys(d for d in re.split(r"[\s,，;；]+", values["devices"]) if d))
    try:
        if not devices:
            raise ValueError("devices: name at least one device")
        if len(devices) > MAX_DEVICES:
            raise ValueError(f"devices: at most {MAX_DEVICES}")
        unknown = await run_in_threadpool(ctx.registry.unknown, set(devices))
        if unknown:
            raise ValueError(f"devices: unknown device {', '.join(unknown[:5])}")
        start, end = _local(values["start"], "start"), _local(values["end"], "end")
        if end <= start:
            raise ValueError("end: must be after start")
        if len(values["reason"]) > 2000:
            raise ValueError("reason: at most 2000 characters")
    except ValueError as exc:
        return await _show(request, who, status=422, error=str(exc), values=values)
    svc = ctx.contract
    stored = await run_in_threadpool(lambda: svc.store.add_window(
        devices=devices, start=start, end=end, created_by=who.account.name, reason=values["reason"]))
    svc.reload_maintenance()
    await run_in_threadpool(lambda: audit.record(
        ctx.engine, actor=who.account.name, role=who.account.role.value, address=client_address(request),
        via=audit.Via.CONSOLE, action="maintenance.add", target=f"window {stored.id}",
        detail=f"{', '.join(devices)}: {start.isoformat()} - {end.isoformat()} {values['reason']}"))
    return RedirectResponse("/maintenance", status_code=303, headers=SECURITY_HEADERS)


@router.post("/maintenance/{window_id}/cancel")
async def cancel(request: Request, who: Maintainer, window_id: int) -> Response:
    await form(request, who)
    ctx = context(request)
    svc = ctx.contract
    # beyond a 64-bit row id no window can exist (and the store could not even look it up)
    found = -(2**63) <= window_id < 2**63 and await run_in_threadpool(svc.store.delete_window, window_id)
    if not found:
        raise Denied(404, f"no maintenance window {window_id}")
    svc.reload_maintenance()
    await run_in_threadpool(lambda: audit.record(
        ctx.engine, actor=who.account.name, role=who.account.role.value, address=client_address(request),
        via=audit.Via.CONSOLE, action="maintenance.cancel", target=f"window {window_id}"))
    return RedirectResponse("/maintenance", status_code=303, headers=SECURITY_HEADERS)
