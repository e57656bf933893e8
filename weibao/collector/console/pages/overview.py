"""The overview: devices up / down / unknown by category and site, open tickets with their clocks, the
newest inspection report. It refreshes itself in place (``refresh_s``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from weibao.collector.console.render import page
from weibao.collector.console.reportfiles import list_reports
from weibao.collector.console.status import DOWN, counts, device_rows, ticket_rows
from weibao.collector.console.web import Reader, settings
from weibao.collector.http.deps import context
from weibao.collector.http.routers.tickets import now as contract_now
from weibao.collector.tickets.ops import NOT_CLOSED

router = APIRouter()
MAX_OPEN = 300


@router.get("/")
async def overview(request: Request, who: Reader) -> Response:
    ctx = context(request)
    svc = ctx.contract
    stale = settings(ctx).stale_after_s

    def read() -> dict[str, Any]:
        now = contract_now()
        devices = device_rows(ctx.registry.states(metrics=("up",)), now, stale)
        tickets = ticket_rows(svc, svc.store.find(state=list(NOT_CLOSED), limit=MAX_OPEN), now)
        tickets.sort(key=lambda r: r.urgency)
        open_of: dict[str, str] = {}
        for r in tickets:
            open_of.setdefault(r.ticket.device, r.ticket.id)
        inspections = [r for r in list_reports(ctx.config.data_dir) if r.kind == "inspection"][:3]
        return {"now": now, "by_category": counts(devices, "category"), "by_site": counts(devices, "site"),
                "down": [d for d in devices if d.status == DOWN], "open_of": open_of, "tickets": tickets,
                "total": len(devices), "inspections": inspections, "more": len(tickets) >= MAX_OPEN}

    return page(request, who, "overview.html", **await run_in_threadpool(read))
