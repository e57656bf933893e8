"""``POST /api/v1/ingest`` (agent batches) and ``PUT /api/v1/inventory`` (an agent registers its devices).

Ingest counts every refusal (by reason) and its latency in ``/metrics``, so it authenticates inside its own
try block rather than as a dependency.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from weibao.collector.auth import Principal
from weibao.collector.errors import Refused
from weibao.collector.http.context import Context
from weibao.collector.http.deps import Agent, Ctx, authenticate, context, json_response, read_body
from weibao.collector.validate import parse
from weibao.core.wire import CLOCK_WARN_S, INGEST_PATH, INVENTORY_PATH, InventoryRegistration, http_date

log = logging.getLogger(__name__)

router = APIRouter()
CLOCK_WARN_EVERY_S = 600.0
MAX_INVENTORY_BYTES = 16 * 1024 * 1024
_clock_warned: dict[str, float] = {}


def _clock(ctx: Context, agent: str, date: str | None) -> None:
    """Compare the sender's clock (its Date header) with ours: samples carry the agent's time, so a wrong
    agent clock misplaces every sample. Shown in /metrics; a warning now and then in the log."""
    sent = http_date(date)
    if sent is None:
        return
    offset = round(sent - time.time())
    ctx.metrics.clock(agent, offset)
    if abs(offset) > CLOCK_WARN_S:
        now = time.monotonic()
        if now - _clock_warned.get(agent, -CLOCK_WARN_EVERY_S) >= CLOCK_WARN_EVERY_S:
            _clock_warned[agent] = now
            log.warning("agent %s: its clock is %d s %s ours; its samples are stamped with it (fix its time "
                        "synchronisation)", agent, abs(offset), "ahead of" if offset > 0 else "behind")


@router.post(INGEST_PATH)
async def ingest(request: Request) -> Response:
    ctx = context(request)
    started = time.perf_counter()
    try:
        principal: Principal = await authenticate(request)
        _clock(ctx, principal.name, request.headers.get("date"))
        body = await read_body(request, ctx.config.limits.max_batch_bytes, nul_ok=True)
        outcome = await run_in_threadpool(ctx.ingestor.ingest, principal, body)
    except Refused as exc:
        ctx.metrics.refuse(exc.reason)
        raise
    finally:
        ctx.metrics.observe(time.perf_counter() - started)
    return json_response(outcome.body())


@router.put(INVENTORY_PATH)
async def inventory(request: Request, ctx: Ctx, who: Agent) -> Response:
    """An agent's whole set of devices; 403 for another agent's name or for a device another agent owns."""
    body = await read_body(request, MAX_INVENTORY_BYTES)
    reg = parse(body, InventoryRegistration)
    if reg.agent != who.name:
        raise Refused(403, "wrong_agent", f"this token may not register devices for agent {reg.agent!r}")
    return json_response(await run_in_threadpool(ctx.registry.register, reg))
