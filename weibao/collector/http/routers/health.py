"""``GET /healthz`` (the state store answers) and ``GET /metrics`` (Prometheus text); no token needed."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from weibao.collector.http.deps import Ctx, json_response
from weibao.collector.http.guard import metrics_lines

router = APIRouter()


@router.get("/healthz")
async def healthz(ctx: Ctx) -> Response:
    def ping() -> None:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    ha = ctx.contract.ha
    replica: dict[str, object] = {} if ha is None else {"replica": ha.replica, "leader": ha.leading}
    try:
        await run_in_threadpool(ping)
    except Exception as exc:  # any failure of the store means "not healthy", with its type named
        return json_response({"status": "error", "state_store": type(exc).__name__, **replica}, 503)
    if ha is not None:  # which replica runs the contract engine, as the leader row says
        replica["leader_replica"] = (await run_in_threadpool(ha.leader))["holder"]
    return json_response({"status": "ok", "schema": ctx.schema, "tsdb": ctx.store.name, **replica})


@router.get("/metrics")
async def metrics(ctx: Ctx) -> Response:
    lines = [*ctx.contract.calendar_watch.metrics(), *metrics_lines()]
    if ctx.contract.ha is not None:
        lines = [*lines, *ctx.contract.ha.metrics()]
    text = ctx.metrics.render() + ctx.reports.metrics.render() + "".join(f"{line}\n" for line in lines)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")
