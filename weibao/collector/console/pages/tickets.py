"""Tickets: the list with filters in the URL, one ticket with its clocks, timeline and actions, and the form
a person opens a request with (contract.md: a fault a user reports, a request for guidance, a general
request; the response clock runs from submission).

The actions offered are exactly ``actions.available`` for the person's role (a new row in the actions table
shows up here unchanged); a posted action goes through ``actions.perform``, so what the state machine or
the role does not allow is refused as the API refuses it: 403 for the role, 409 for the state.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from weibao.collector.access import audit
from weibao.collector.access.accounts import UserRole
from weibao.collector.access.sessions import Session
from weibao.collector.console.permissions import acting_roles
from weibao.collector.console.render import page
from weibao.collector.console.status import ticket_rows
from weibao.collector.console.web import SECURITY_HEADERS, Denied, Reader, form
from weibao.collector.http.deps import client_address, context
from weibao.collector.http.routers.tickets import RequestBody
from weibao.collector.http.routers.tickets import now as contract_now
from weibao.collector.tickets.actions import ACTIONS, UnknownAction, available, perform
from weibao.collector.tickets.model import LEVELS, IllegalTransition, TicketKind, TicketState
from weibao.collector.validate import QUERY_MAX, QUERY_MIN
from weibao.core.timeutil import SHANGHAI

router = APIRouter()
PAGE = 100
MAX_NOTE = 10_000


def _day(text: str, field: str) -> date:
    try:
        d = date.fromisoformat(text)
    except ValueError as exc:
        raise Denied(422, f"{field}: not a date (YYYY-MM-DD)") from exc
    if not QUERY_MIN.date() <= d < QUERY_MAX.date():
        raise Denied(422, f"{field}: outside {QUERY_MIN.date()} .. {QUERY_MAX.date()}")
    return d


def filters(request: Request) -> dict[str, Any]:
    """The list's filters from the URL, checked: a bad one is a 422 naming it."""
    q = request.query_params
    states = [s for s in q.getlist("state") if s]
    bad = [s for s in states if s not in set(TicketState)]
    if bad:
        raise Denied(422, f"state: {bad[0]!r} is not one of {', '.join(TicketState)}")
    level = q.get("level") or ""
    if level and level not in {str(n) for n in LEVELS}:
        raise Denied(422, "level: 1, 2 or 3")
    page_no = q.get("page") or "1"
    if not (page_no.isascii() and page_no.isdigit() and len(page_no) <= 6) or not 1 <= int(page_no) <= 10_000:
        raise Denied(422, "page: a number from 1")
    start = _day(q["from"], "from") if q.get("from") else None
    end = _day(q["to"], "to") if q.get("to") else None
    return {"state": states, "level": level, "device": (q.get("device") or "").strip()[:128],
            "from": start, "to": end, "page": int(page_no)}


def _since(d: date | None) -> datetime | None:
    return datetime.combine(d, time(), SHANGHAI) if d else None


@router.get("/tickets")
async def ticket_list(request: Request, who: Reader) -> Response:
    f = filters(request)
    svc = context(request).contract

    def read() -> dict[str, Any]:
        now = contract_now()
        found = svc.store.find(state=[TicketState(s) for s in f["state"]] or None, device=f["device"] or None,
                               level=int(f["level"]) if f["level"] else None, opened_since=_since(f["from"]),
                               opened_before=_since(f["to"] + timedelta(days=1) if f["to"] else None),
                               limit=PAGE + 1, offset=(f["page"] - 1) * PAGE)
        return {"rows": ticket_rows(svc, found[:PAGE], now), "more": len(found) > PAGE, "now": now}

    values = await run_in_threadpool(read)
    keep = [(k, v) for k, v in request.query_params.multi_items() if k != "page" and v]
    return page(request, who, "tickets.html", f=f, states=list(TicketState), levels=LEVELS,
                prev_url=f"/tickets?{urlencode([*keep, ('page', f['page'] - 1)])}" if f["page"] > 1 else "",
                next_url=f"/tickets?{urlencode([*keep, ('page', f['page'] + 1)])}" if values["more"] else "",
                **values)


def offered(who: Session, ticket: Any, now: datetime) -> list[str]:
    """The actions this person may take on the ticket now, in the table's order."""
    names: dict[str, None] = {}
    for role in acting_roles(who.account.role):
        for name in available(ticket, role, now):
            names.setdefault(name, None)
    return [n for n in ACTIONS if n in names]


def _request_page(request: Request, who: Session, *, values: dict[str, str], error: str = "",
                  status: int = 200) -> Response:
    return page(request, who, "request.html", status=status, kinds=list(TicketKind), levels=LEVELS,
                sets_level=who.account.role != UserRole.CLIENT, values=values, error=error)


@router.get("/tickets/new")
async def request_form(request: Request, who: Reader) -> Response:
    return _request_page(request, who, values={"kind": TicketKind.FAULT.value, "level": "3"})


@router.post("/tickets/new")
async def open_request(request: Request, who: Reader) -> Response:
    """Open a request as the API's ``POST /api/v1/tickets`` does: the same body rules, level 3 unless an
    engineer (or admin) sets another, a device named must be a registered one; audited."""
    data = await form(request, who)
    values = {k: str(data.get(k) or "").strip() for k in ("kind", "summary", "note", "device", "level")}
    ctx = context(request)
    try:
        if values["level"] not in ("", *(str(n) for n in LEVELS)):  # int() would take "١" or " 1"
            raise ValueError("level: 1, 2 or 3")
        level = int(values["level"] or "3")
        body = RequestBody(kind=TicketKind(values["kind"] or "fault"), summary=values["summary"],
                           note=values["note"], device=values["device"], level=level)
    except (ValueError, ValidationError) as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            problem = f"{'.'.join(str(p) for p in first['loc']) or 'form'}: {first['msg']}"
        else:
            problem = "kind, level: not one of the choices"
        return _request_page(request, who, values=values, error=problem, status=422)
    if body.level != 3 and who.account.role == UserRole.CLIENT:
        raise Denied(403, "only an engineer sets a level other than 3")
    unknown = await run_in_threadpool(ctx.registry.unknown, {body.device}) if body.device else []
    if unknown:
        return _request_page(request, who, values=values, error=f"device: unknown device {body.device!r}",
                             status=422)
    svc = ctx.contract

    def run() -> Any:
        return svc.ops.open(device=body.device, rule=body.kind.value, at=contract_now(), episode=None,
                            note=body.note, level=body.level, actor=who.account.name, kind=body.kind,
                            summary=body.summary)

    ticket = await run_in_threadpool(run)
    await run_in_threadpool(lambda: audit.record(
        ctx.engine, actor=who.account.name, role=who.account.role.value, address=client_address(request),
        via=audit.Via.CONSOLE, action="ticket.open", target=ticket.id, ok=True, detail=body.summary))
    return RedirectResponse(f"/tickets/{quote(ticket.id, safe='')}", status_code=303, headers=SECURITY_HEADERS)


@router.get("/tickets/{ticket_id}")
async def ticket_page(request: Request, who: Reader, ticket_id: str) -> Response:
    svc = context(request).contract

    def read() -> dict[str, Any] | None:
        t = svc.store.get(ticket_id)
        if t is None:
            return None
        now = contract_now()
        return {"row": ticket_rows(svc, [t], now)[0], "actions": [ACTIONS[n] for n in offered(who, t, now)],
                "now": now}

    values = await run_in_threadpool(read)
    if values is None:
        raise Denied(404, f"no ticket {ticket_id}")
    return page(request, who, "ticket.html", **values)


@router.post("/tickets/{ticket_id}/{action}")
async def act(request: Request, who: Reader, ticket_id: str, action: str) -> Response:
    data = await form(request, who)
    note = str(data.get("note") or "").strip()
    if len(note) > MAX_NOTE:
        raise Denied(422, f"note: at most {MAX_NOTE} characters")
    ctx = context(request)
    spec = ACTIONS.get(action)
    role = next((r for r in acting_roles(who.account.role) if spec is not None and r in spec.roles), None)

    def record(ok: bool, detail: str) -> None:
        audit.record(ctx.engine, actor=who.account.name, role=who.account.role.value,
                     address=client_address(request), via=audit.Via.CONSOLE, action=f"ticket.{action}"[:64],
                     target=ticket_id, ok=ok, detail=detail)

    def run() -> Any:
        return perform(ctx.contract.ops, ticket_id, action, actor=who.account.name,
                       role=role or who.account.role.value, note=note, now=contract_now)

    try:
        ticket = await run_in_threadpool(run)
    except UnknownAction as exc:
        await run_in_threadpool(record, False, str(exc))
        raise Denied(403, str(exc)) from exc
    except IllegalTransition as exc:
        await run_in_threadpool(record, False, exc.reason)
        raise Denied(409, exc.reason) from exc
    if ticket is None:
        raise Denied(404, f"no ticket {ticket_id}")
    await run_in_threadpool(record, True, note)
    return RedirectResponse(f"/tickets/{quote(ticket_id, safe='')}", status_code=303, headers=SECURITY_HEADERS)
