"""HTTP routes: ingest, inventory registration, device states, rollup series, health and metrics."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from weibao.collector import auth, rollup
from weibao.collector.auth import Principal, Role
from weibao.collector.ingest import Refused, parse
from weibao.core.wire import CLOCK_WARN_S, InventoryRegistration, from_ms, http_date

if TYPE_CHECKING:
    from weibao.collector.http.app import Context

log = logging.getLogger(__name__)

router = APIRouter()
CLOCK_WARN_EVERY_S = 600.0
_clock_warned: dict[str, float] = {}

MAX_INVENTORY_BYTES = 16 * 1024 * 1024


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status_code=status,
                    media_type="application/json", headers=headers)


def _refused(exc: Refused) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return _json(exc.body(), exc.status, headers)


async def _principal(request: Request) -> Principal:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(401, "unauthorized", "a bearer token is required")
    found = await run_in_threadpool(auth.verify, _ctx(request).engine, token.strip())
    if found is None:
        raise Refused(401, "unauthorized", "unknown or revoked token")
    return found


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


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes: from
    Content-Length before reading anything, else while counting the streamed chunks."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Refused(400, "bad_request", "Content-Length is not a number")
        if int(declared) > limit:
            raise Refused(413, "too_large", f"body of {declared} bytes exceeds {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, "too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/api/v1/ingest")
async def ingest(request: Request) -> Response:
    ctx = _ctx(request)
    started = time.perf_counter()
    try:
        principal = await _principal(request)
        _clock(ctx, principal.name, request.headers.get("date"))
        body = await _body(request, ctx.config.limits.max_batch_bytes)
        outcome = await run_in_threadpool(ctx.ingestor.ingest, principal, body)
    except Refused as exc:
        ctx.metrics.refuse(exc.reason)
        return _refused(exc)
    finally:
        ctx.metrics.observe(time.perf_counter() - started)
    return _json(outcome.body())


@router.put("/api/v1/inventory")
async def inventory(request: Request) -> Response:
    ctx = _ctx(request)
    try:
        principal = await _principal(request)
        body = await _body(request, MAX_INVENTORY_BYTES)
        reg: InventoryRegistration = parse(body, InventoryRegistration)
        if principal.role == Role.AGENT and reg.agent != principal.name:
            raise Refused(403, "wrong_agent", f"this token may not register devices for agent {reg.agent!r}")
        result = await run_in_threadpool(ctx.registry.register, reg)
    except Refused as exc:
        return _refused(exc)
    return _json(result)


@router.get("/api/v1/devices")
async def devices(request: Request) -> Response:
    try:
        await _principal(request)
    except Refused as exc:
        return _refused(exc)
    return _json({"devices": await run_in_threadpool(_ctx(request).registry.states)})


def _when(value: str | None, name: str, default: datetime) -> datetime:
    if value is None:
        return default
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Refused(422, "invalid_field", f"{name}: not an ISO 8601 time",
                      [{"field": name, "message": "not an ISO 8601 time"}]) from exc
    if ts.tzinfo is None:
        raise Refused(422, "invalid_field", f"{name}: needs an offset",
                      [{"field": name, "message": "timestamp needs an offset (a naive timestamp is refused)"}])
    return ts


@router.get("/api/v1/series")
async def series(request: Request, device: str, metric: str, step: int = 300,
                 label: Annotated[list[str] | None, Query()] = None) -> Response:
    q = request.query_params
    try:
        await _principal(request)
        if step not in rollup.RESOLUTIONS:
            raise Refused(422, "invalid_field", "step must be 300 or 3600",
                          [{"field": "step", "message": "step must be 300 or 3600"}])
        to = _when(q.get("to"), "to", datetime.now(UTC))
        start = _when(q.get("from"), "from", to - timedelta(days=1))
        wanted: dict[str, str] = {}
        for item in label or []:
            k, sep, v = item.partition("=")
            if not sep:
                raise Refused(422, "invalid_field", "label filters are KEY=VALUE",
                              [{"field": "label", "message": "expected KEY=VALUE"}])
            wanted[k] = v
    except Refused as exc:
        return _refused(exc)
    # a bucket belongs to the answer when it starts inside [from, to)
    lo_ms, hi_ms = round(start.timestamp() * 1000), round(to.timestamp() * 1000)

    def read() -> list[rollup.SeriesRollup]:
        with _ctx(request).engine.connect() as conn:
            return rollup.read(conn, device=device, metric=metric, resolution=step, from_ms=lo_ms,
                               to_ms=hi_ms, labels=wanted or None)

    found = await run_in_threadpool(read)
    return _json({"device": device, "metric": metric, "step": step, "from": start.isoformat(),
                  "to": to.isoformat(),
                  "series": [{"labels": s.labels,
                              "points": [{"t": from_ms(p.bucket_ms).isoformat(), "min": p.min, "avg": p.avg,
                                          "max": p.max, "last": p.last, "count": p.count}
                                         for p in s.points]} for s in found]})


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    ctx = _ctx(request)

    def ping() -> None:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(ping)
    except Exception as exc:  # any failure of the store means "not healthy", with its type named
        return _json({"status": "error", "state_store": type(exc).__name__}, 503)
    return _json({"status": "ok", "schema": ctx.schema, "tsdb": ctx.store.name})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(_ctx(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
