"""Tickets and the contract engine's state, for people's tokens (engineer, client).

    GET  /api/v1/tickets                    ?state=open,accepted &device= &level= &kind= &since=ISO &limit=
    GET  /api/v1/tickets/{id}               one ticket with clocks and events
    POST /api/v1/tickets                    a request a person submits: {"kind", "summary", "note", "device",
                                            "level"}; the response clock runs from now; level 3 unless an
                                            engineer sets another
    POST /api/v1/tickets/{id}/{action}      an action of tickets/actions.py, body {"note": ...}: who may take
                                            which action is that table's (403 otherwise)
    GET  /api/v1/contract                   the engine's state: enabled, ready, devices, queue, clock; how far
                                            the working calendar reaches (``calendar``, with a warning when
                                            short) (engineers)

Tickets are answered as ``weibao.collector.tickets.views.ticket_json`` shapes them, clocks as of the
request. The actor of a change is the token's name. 404 for an unknown ticket or action, 409 (with the
reason) for a change the ticket's state does not allow, 422 for a bad body.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from weibao.collector.auth import Role
from weibao.collector.contract.calendar import local
from weibao.collector.engine.wiring import ContractServices
from weibao.collector.errors import Refused
from weibao.collector.http.deps import Ctx, Engineer, Person, audit, json_response, read_body
from weibao.collector.tickets.actions import ACTIONS, UnknownAction, perform
from weibao.collector.tickets.model import IllegalTransition, Ticket, TicketKind, TicketState
from weibao.collector.tickets.views import clocks_by_name, ticket_json
from weibao.collector.validate import bad_field, parse, parse_time

router = APIRouter()

MAX_BODY = 64 * 1024


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str = Field("", max_length=10_000)


class RequestBody(BaseModel):
    """A request a person submits (contract.md: a fault a user reports, a request for guidance, a general
    request)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TicketKind = TicketKind.FAULT
    summary: str = Field(min_length=1, max_length=200)
    note: str = Field("", max_length=10_000)
    device: str = Field("", max_length=128)
    level: int = Field(3, ge=1, le=3)


def now() -> datetime:
    return local(datetime.now(UTC))


def view(svc: ContractServices, ticket: Ticket, at: datetime) -> dict[str, Any]:
    return ticket_json(ticket, clocks_by_name(svc.clocks(ticket, at)))


def not_found(ticket_id: str) -> Refused:
    return Refused(404, "not_found", f"no ticket {ticket_id}")


@router.get("/api/v1/tickets")
async def list_tickets(request: Request, ctx: Ctx, _who: Person) -> Response:
    q = request.query_params
    states: list[TicketState] | None = None
    if q.getlist("state"):
        try:
            states = [TicketState(s.strip()) for v in q.getlist("state") for s in v.split(",") if s.strip()]
        except ValueError as exc:
            raise bad_field("state", f"one of {', '.join(s.value for s in TicketState)}") from exc
    level = q.get("level")
    if level is not None and level not in ("1", "2", "3"):
        raise bad_field("level", "1, 2 or 3")
    kind = q.get("kind")
    if kind is not None and kind not in {k.value for k in TicketKind}:
        raise bad_field("kind", f"one of {', '.join(k.value for k in TicketKind)}")
    since = parse_time(q["since"], "since") if q.get("since") else None
    limit = q.get("limit", "500")
    if not (limit.isascii() and limit.isdigit() and len(limit) <= 6) or not 1 <= int(limit) <= 10_000:
        raise bad_field("limit", "a number from 1 to 10000")
    svc = ctx.contract

    def read() -> list[dict[str, Any]]:
        at = now()
        found = svc.store.find(state=states, device=q.get("device"), opened_since=since, limit=int(limit))
        return [view(svc, t, at) for t in found
                if (level is None or t.level == int(level)) and (kind is None or t.kind.value == kind)]

    return json_response({"tickets": await run_in_threadpool(read)})


@router.get("/api/v1/tickets/{ticket_id}")
async def get_ticket(ctx: Ctx, _who: Person, ticket_id: str) -> Response:
    svc = ctx.contract
    ticket = await run_in_threadpool(svc.store.get, ticket_id)
    if ticket is None:
        raise not_found(ticket_id)
    return json_response(view(svc, ticket, now()))


@router.post("/api/v1/tickets", status_code=201)
async def open_request(request: Request, ctx: Ctx, who: Person) -> Response:
    body = parse(await read_body(request, MAX_BODY) or b"{}", RequestBody)
    if body.level != 3 and who.role != Role.ENGINEER:
        raise Refused(403, "forbidden", "only an engineer sets a level other than 3 (contract.md)")
    if body.device:
        unknown = await run_in_threadpool(ctx.registry.unknown, {body.device})
        if unknown:
            raise bad_field("device", f"unknown device {body.device!r}")
    svc = ctx.contract
    ticket = await run_in_threadpool(lambda: svc.ops.open(
        device=body.device, rule=body.kind.value, at=now(), episode=None, note=body.note, level=body.level,
        actor=who.name, kind=body.kind, summary=body.summary))
    await audit(request, who, "ticket.open", ticket.id, detail=body.summary)
    return json_response(view(svc, ticket, now()), 201)


@router.post("/api/v1/tickets/{ticket_id}/{action}")
async def change_ticket(request: Request, ctx: Ctx, who: Person, ticket_id: str, action: str) -> Response:
    if action not in ACTIONS:
        raise Refused(404, "not_found", f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    body = parse(await read_body(request, MAX_BODY) or b"{}", ActionBody)
    svc = ctx.contract
    try:
        ticket = await run_in_threadpool(lambda: perform(svc.ops, ticket_id, action, actor=who.name,
                                                         role=who.role.value, note=body.note, now=now))
    except UnknownAction as exc:
        await audit(request, who, f"ticket.{action}", ticket_id, ok=False, detail=str(exc))
        raise Refused(403, "forbidden", str(exc)) from exc
    except IllegalTransition as exc:
        await audit(request, who, f"ticket.{action}", ticket_id, ok=False, detail=exc.reason)
        return json_response({"error": str(exc), "reason": exc.reason,
                              "state": exc.state.value if exc.state else None, "action": exc.action.value}, 409)
    if ticket is None:
        raise not_found(ticket_id)
    await audit(request, who, f"ticket.{action}", ticket_id, detail=body.note)
    return json_response(view(svc, ticket, now()))


@router.get("/api/v1/contract")
async def contract_status(ctx: Ctx, _who: Engineer) -> Response:
    svc = ctx.contract
    body: dict[str, Any] = svc.engine.status() if svc.engine is not None else {"enabled": False}
    body["rules"] = svc.files.sources
    body["calendar"] = svc.calendar_watch.json()
    if svc.ha is not None:
        body["ha"] = await run_in_threadpool(svc.ha.status)
    return json_response(body)
