"""Devices: the list with a search, and one device with its facts, latest values, tickets and charts."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from weibao.collector import rollup
from weibao.collector.console.charts import CHARTS, DEFAULT_RANGE, RANGES, chart, device_metrics
from weibao.collector.console.render import page
from weibao.collector.console.status import classify, device_rows, ticket_rows
from weibao.collector.console.web import Denied, Reader, settings
from weibao.collector.http.deps import context
from weibao.collector.http.routers.tickets import now as contract_now
from weibao.collector.state.models import Device
from weibao.core.timeutil import from_ms

router = APIRouter()
STATUSES = ("up", "down", "unknown")
LIST_METRICS = ("up", "icmp.rtt_ms", "icmp.loss_pct", "cpu.util_pct", "mem.util_pct")


def _matches(row: Any, q: str) -> bool:
    asset = row.asset if isinstance(row.asset, dict) else {}
    hay = [row.name, row.site, row.kind, row.category, row.agent, *map(str, row.tags),
           *(str(v) for v in asset.values() if isinstance(v, str | int | float))]
    return any(q in h.lower() for h in hay)


@router.get("/devices")
async def device_list(request: Request, who: Reader) -> Response:
    ctx = context(request)
    q = (request.query_params.get("q") or "").strip().lower()[:200]
    status = request.query_params.get("status") or ""
    if status and status not in STATUSES:
        raise Denied(422, f"status: one of {', '.join(STATUSES)}")

    def read() -> list[Any]:
        rows = device_rows(ctx.registry.states(metrics=LIST_METRICS), contract_now(), settings(ctx).stale_after_s)
        return [r for r in rows if (not q or _matches(r, q)) and (not status or r.status == status)]

    rows = await run_in_threadpool(read)
    return page(request, who, "devices.html", rows=rows, q=q, want=status, statuses=STATUSES)


@router.get("/devices/{name}")
async def device_page(request: Request, who: Reader, name: str) -> Response:
    ctx = context(request)
    svc = ctx.contract
    rng = request.query_params.get("range") or DEFAULT_RANGE
    if rng not in RANGES:
        raise Denied(422, f"range: one of {', '.join(RANGES)}")
    length, step = RANGES[rng]

    def read() -> dict[str, Any] | None:
        now = contract_now()
        with ctx.engine.connect() as conn:
            row = conn.execute(Device.__table__.select().where(Device.name == name)).first()
            if row is None:
                return None
            latest = rollup.latest(conn, name)
            have = device_metrics(conn, name)
            charts = [(spec, c) for spec in CHARTS if spec.metric in have
                      for c in [chart(conn, name, spec, now - length, now, step)] if c is not None]
        seen = max((r.ts_ms for r in latest), default=None)
        state = {"name": row.name, "site": row.site, "agent": row.agent, "kind": row.kind,
                 "category": row.category, "depends_on": row.depends_on, "tags": json.loads(row.tags),
                 "asset": json.loads(row.asset), "active": row.active,
                 "last_seen": None if seen is None else from_ms(seen).isoformat(),
                 "up": next((r.value >= 1 for r in latest if r.metric == "up" and r.labels == "{}"), None),
                 "latest": {}}
        device = classify(state, now, settings(ctx).stale_after_s)
        values = sorted(((r.metric, json.loads(r.labels), r.value, r.ts_ms) for r in latest),
                        key=lambda v: (v[0], sorted(v[1].items())))
        tickets = ticket_rows(svc, svc.store.find(device=name, limit=20), now)
        return {"device": device, "facts": state, "values": values, "charts": charts, "tickets": tickets,
                "range": rng, "ranges": list(RANGES), "now": now}

    values = await run_in_threadpool(read)
    if values is None:
        raise Denied(404, f"no device {name}")
    return page(request, who, "device.html", **values)

