"""HTTP routes for tickets and maintenance windows; every route needs an engineer's token.

    GET  /api/v1/tickets                    ?state=open,accepted &device= &level= &since=ISO &limit=
    GET  /api/v1/tickets/{id}               one ticket with clocks and events
    POST /api/v1/tickets/{id}/{action}      accept | restore | report | comment | close, body {"note": ...}
    POST /api/v1/maintenance                {"devices": [...], "start": ISO, "end": ISO, "reason": ...}
    GET  /api/v1/maintenance                ?device= &active=ISO
    GET  /api/v1/contract                   the engine's state: enabled, ready, devices, queue, clock

Tickets are answered as ``weibao.collector.tickets.views.ticket_json`` shapes them, clocks as of the request.
The actor of a change is the token's name. 401 without a valid token, 403 for an agent's token, 404 for
an unknown ticket, 409 (with the reason) for a change the ticket's state does not allow, 422 for a bad body.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from weibao.collector.auth import Principal, Role
from weibao.collector.contract.calendar import local
from weibao.collector.engine.tickets import later
from weibao.collector.http.api import _body, _json, _principal, _refused
from weibao.collector.ingest import Refused
from weibao.collector.tickets import machine
from weibao.collector.tickets.machine import Change
from weibao.collector.tickets.model import IllegalTransition, Ticket, TicketState
from weibao.collector.tickets.store import StoredWindow
from weibao.collector.tickets.views import clocks_by_name, ticket_json

if TYPE_CHECKING:
    from weibao.collector.engine.wiring import ContractServices

router = APIRouter()

MAX_BODY = 64 * 1024
ACTIONS = ("accept", "restore", "report", "comment", "close")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionBody(_Strict):
    note: str = Field("", max_length=10_000)


class WindowBody(_Strict):
    devices: list[str] = Field(min_length=1, max_length=10_000)
    start: AwareDatetime
    end: AwareDatetime
    reason: str = Field("", max_length=2_000)


def _svc(request: Request) -> ContractServices:
    svc: ContractServices = request.app.state.contract
    return svc


async def _engineer(request: Request) -> Principal:
    who = await _principal(request)
    if who.role != Role.ENGINEER:
        raise Refused(403, "forbidden", "tickets and maintenance windows need an engineer's token")
    return who


def _now() -> datetime:
    return local(datetime.now(UTC))


def _view(svc: ContractServices, ticket: Ticket, now: datetime) -> dict[str, Any]:
    return ticket_json(ticket, clocks_by_name(svc.clocks(ticket, now)))


def _bad(field: str, message: str) -> Refused:
    return Refused(422, "invalid_field", f"{field}: {message}", [{"field": field, "message": message}])


def _parse(body: bytes, model: type[_Strict]) -> Any:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        problems = [{"field": ".".join(map(str, e["loc"])) or "(body)", "message": e["msg"]}
                    for e in exc.errors(include_url=False, include_input=False)[:20]]
        raise Refused(422, "invalid_field", "invalid body: " + ", ".join(p["field"] for p in problems),
                      problems) from exc


def _when(text: str, field: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad(field, "not an ISO 8601 time") from exc
    if ts.tzinfo is None:
        raise _bad(field, "needs an offset (a naive time is refused)")
    return ts


@router.get("/api/v1/tickets")
async def list_tickets(request: Request) -> Response:
    q = request.query_params
    try:
        await _engineer(request)
        states: list[TicketState] | None = None
        if q.getlist("state"):
            try:
                states = [TicketState(s.strip()) for v in q.getlist("state") for s in v.split(",") if s.strip()]
            except ValueError as exc:
                raise _bad("state", f"one of {', '.join(s.value for s in TicketState)}") from exc
        level = q.get("level")
        if level is not None and level not in ("1", "2", "3"):
            raise _bad("level", "1, 2 or 3")
        since = _when(q["since"], "since") if q.get("since") else None
        limit = q.get("limit", "500")
        if not limit.isdigit() or not 1 <= int(limit) <= 10_000:
            raise _bad("limit", "a number from 1 to 10000")
    except Refused as exc:
        return _refused(exc)
    svc = _svc(request)

    def read() -> list[dict[str, Any]]:
        now = _now()
        found = svc.store.find(state=states, device=q.get("device"), opened_since=since, limit=int(limit))
        return [_view(svc, t, now) for t in found if level is None or t.level == int(level)]

    return _json({"tickets": await run_in_threadpool(read)})


@router.get("/api/v1/tickets/{ticket_id}")
async def get_ticket(request: Request, ticket_id: str) -> Response:
    try:
        await _engineer(request)
    except Refused as exc:
        return _refused(exc)
    svc = _svc(request)
    ticket = await run_in_threadpool(svc.store.get, ticket_id)
    if ticket is None:
        return _json({"error": f"no ticket {ticket_id}", "reason": "not_found"}, 404)
    return _json(_view(svc, ticket, _now()))


def _action(name: str, actor: str, note: str) -> Any:
    def act(t: Ticket) -> Change:
        at = later(t, _now())
        if name == "accept":
            return machine.accept(t, at=at, actor=actor, note=note)
        if name == "restore":
            return machine.restore(t, at=at, actor=actor, note=note)
        if name == "report":
            return machine.report(t, at=at, actor=actor, note=note)
        if name == "comment":
            return machine.comment(t, at=at, actor=actor, note=note)
        return machine.close(t, at=at, actor=actor, note=note)
    return act


@router.post("/api/v1/tickets/{ticket_id}/{action}")
async def change_ticket(request: Request, ticket_id: str, action: str) -> Response:
    try:
        who = await _engineer(request)
        if action not in ACTIONS:
            return _json({"error": f"unknown action {action!r}; one of {', '.join(ACTIONS)}",
                          "reason": "not_found"}, 404)
        body: ActionBody = _parse(await _body(request, MAX_BODY), ActionBody)
    except Refused as exc:
        return _refused(exc)
    svc = _svc(request)
    try:
        ticket = await run_in_threadpool(svc.ops.change, ticket_id, _action(action, who.name, body.note))
    except IllegalTransition as exc:
        return _json({"error": str(exc), "reason": exc.reason, "state": exc.state.value if exc.state else None,
                      "action": exc.action.value}, 409)
    if ticket is None:
        return _json({"error": f"no ticket {ticket_id}", "reason": "not_found"}, 404)
    return _json(_view(svc, ticket, _now()))


def _window_json(w: StoredWindow | None, *, devices: frozenset[str], start: datetime, end: datetime,
                 reason: str) -> dict[str, Any]:
    return {"id": w.id if w else None, "devices": sorted(devices), "start": start.isoformat(),
            "end": end.isoformat(), "reason": reason, "created_by": w.created_by if w else None,
            "source": "api" if w else "file"}


@router.post("/api/v1/maintenance")
async def add_window(request: Request) -> Response:
    try:
        who = await _engineer(request)
        body: WindowBody = _parse(await _body(request, MAX_BODY), WindowBody)
        if body.end <= body.start:
            raise _bad("end", "must be after start")
    except Refused as exc:
        return _refused(exc)
    svc = _svc(request)
    stored = await run_in_threadpool(lambda: svc.store.add_window(
        devices=body.devices, start=local(body.start), end=local(body.end), created_by=who.name,
        reason=body.reason))
    if svc.engine is not None:
        svc.engine.reload_maintenance()
    w = stored.window
    return _json(_window_json(stored, devices=w.devices, start=w.start, end=w.end, reason=w.reason), 201)


@router.get("/api/v1/maintenance")
async def list_windows(request: Request) -> Response:
    q = request.query_params
    try:
        await _engineer(request)
        at = _when(q["active"], "active") if q.get("active") else None
    except Refused as exc:
        return _refused(exc)
    svc = _svc(request)
    device = q.get("device")
    stored = await run_in_threadpool(svc.store.windows, device=device)
    out = [_window_json(s, devices=s.window.devices, start=s.window.start, end=s.window.end,
                        reason=s.window.reason) for s in stored]
    out += [_window_json(None, devices=w.devices, start=w.start, end=w.end, reason=w.reason)
            for w in svc.files.windows if device is None or device in w.devices]
    if at is not None:
        out = [w for w in out if _when(w["start"], "start") <= at < _when(w["end"], "end")]
    out.sort(key=lambda w: (_when(w["start"], "start"), w["id"] or 0))
    return Response(json.dumps({"windows": out}, ensure_ascii=False), media_type="application/json")


@router.get("/api/v1/contract")
async def contract_status(request: Request) -> Response:
    try:
        await _engineer(request)
    except Refused as exc:
        return _refused(exc)
    svc = _svc(request)
    body: dict[str, Any] = svc.engine.status() if svc.engine is not None else {"enabled": False}
    body["rules"] = svc.files.sources
    return _json(body)
