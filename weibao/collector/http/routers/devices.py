"""``GET /api/v1/devices`` (every device with its latest state) and ``GET /api/v1/series`` (rollups)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from weibao.collector import rollup
from weibao.collector.auth import Role
from weibao.collector.errors import Refused
from weibao.collector.http.deps import Anyone, Ctx, json_response
from weibao.collector.validate import bad_field, parse_time
from weibao.core.timeutil import from_ms, to_ms

router = APIRouter()


@router.get("/api/v1/devices")
async def devices(ctx: Ctx, who: Anyone) -> Response:
    found = await run_in_threadpool(ctx.registry.states)
    if who.role is Role.AGENT:  # an agent sees the devices it registered, not the other sites'
        found = [d for d in found if d.get("agent") == who.name]
    return json_response({"devices": found})


@router.get("/api/v1/series")
async def series(ctx: Ctx, who: Anyone, device: str, metric: str, step: int = 300,
                 label: Annotated[list[str] | None, Query()] = None,
                 start: Annotated[str | None, Query(alias="from")] = None,
                 to: Annotated[str | None, Query()] = None) -> Response:
    if who.role is Role.AGENT and (await run_in_threadpool(ctx.registry.owners, [device])).get(device) != who.name:
        raise Refused(403, "forbidden", f"device {device!r} is not one this agent registered")
    if step not in rollup.RESOLUTIONS:
        raise bad_field("step", "step must be 300 or 3600")
    end = parse_time(to, "to") if to is not None else datetime.now(UTC)
    begin = parse_time(start, "from") if start is not None else end - timedelta(days=1)
    wanted: dict[str, str] = {}
    for item in label or []:
        k, sep, v = item.partition("=")
        if not sep:
            raise bad_field("label", "expected KEY=VALUE")
        wanted[k] = v
    # a bucket belongs to the answer when it starts inside [from, to)
    lo_ms, hi_ms = to_ms(begin), to_ms(end)

    def read() -> list[rollup.SeriesRollup]:
        with ctx.engine.connect() as conn:
            return rollup.read(conn, device=device, metric=metric, resolution=step, from_ms=lo_ms,
                               to_ms=hi_ms, labels=wanted or None)

    found = await run_in_threadpool(read)
    return json_response({"device": device, "metric": metric, "step": step, "from": begin.isoformat(),
                          "to": end.isoformat(),
                          "series": [{"labels": s.labels,
                                      "points": [{"t": from_ms(p.bucket_ms).isoformat(), "min": p.min,
                                                  "avg": p.avg, "max": p.max, "last": p.last, "count": p.count}
                                                 for p in s.points]} for s in found]})
