"""Planned maintenance windows (no ticket, excluded from availability); an engineer's token.

    POST /api/v1/maintenance    {"devices": [...], "start": ISO, "end": ISO, "reason": ...}
    GET  /api/v1/maintenance    ?device= &active=ISO
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from weibao.collector.contract.calendar import local
from weibao.collector.http.deps import Ctx, Engineer, audit, json_response, read_body
from weibao.collector.tickets.store import StoredWindow
from weibao.collector.validate import bad_field, in_range, parse, parse_time
from weibao.core.wire import DeviceName

router = APIRouter()
MAX_BODY = 64 * 1024


class WindowBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    devices: list[DeviceName] = Field(min_length=1, max_length=10_000)
    start: AwareDatetime
    end: AwareDatetime
    reason: str = Field("", max_length=2_000)


def _window_json(w: StoredWindow | None, *, devices: frozenset[str], start: datetime, end: datetime,
                 reason: str) -> dict[str, Any]:
    return {"id": w.id if w else None, "devices": sorted(devices), "start": start.isoformat(),
            "end": end.isoformat(), "reason": reason, "created_by": w.created_by if w else None,
            "source": "api" if w else "file"}


@router.post("/api/v1/maintenance")
async def add_window(request: Request, ctx: Ctx, who: Engineer) -> Response:
    body = parse(await read_body(request, MAX_BODY) or b"{}", WindowBody)
    in_range(body.start, "start")
    in_range(body.end, "end")
    if body.end <= body.start:
        raise bad_field("end", "must be after start")
    # a window may be planned before the device's agent registers it (a device being installed); the
    # answer names what no agent registered yet, so a misspelt name does not pass unseen
    unknown = await run_in_threadpool(ctx.registry.unknown, set(body.devices))
    svc = ctx.contract
    stored = await run_in_threadpool(lambda: svc.store.add_window(
        devices=body.devices, start=local(body.start), end=local(body.end), created_by=who.name,
        reason=body.reason))
    svc.reload_maintenance()
    w = stored.window
    await audit(request, who, "maintenance.add", f"window {stored.id}",
                detail=f"{', '.join(sorted(w.devices))}: {w.start.isoformat()} - {w.end.isoformat()} {w.reason}")
    return json_response({**_window_json(stored, devices=w.devices, start=w.start, end=w.end, reason=w.reason),
                          "unregistered": unknown}, 201)


@router.get("/api/v1/maintenance")
async def list_windows(request: Request, ctx: Ctx, _who: Engineer) -> Response:
    q = request.query_params
    at = parse_time(q["active"], "active") if q.get("active") else None
    svc = ctx.contract
    device = q.get("device")
    stored = await run_in_threadpool(svc.store.windows, device=device)
    out = [_window_json(s, devices=s.window.devices, start=s.window.start, end=s.window.end,
                        reason=s.window.reason) for s in stored]
    out += [_window_json(None, devices=w.devices, start=w.start, end=w.end, reason=w.reason)
            for w in svc.files.windows if device is None or device in w.devices]
    if at is not None:
        out = [w for w in out if parse_time(w["start"], "start") <= at < parse_time(w["end"], "end")]
    out.sort(key=lambda w: (parse_time(w["start"], "start"), w["id"] or 0))
    return json_response({"windows": out})
