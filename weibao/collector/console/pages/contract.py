"""The contract as the collector applies it, read-only: clock limits, fault rows per category, the working
calendar (hours, holidays and make-up days, protection periods) and the files they come from."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from weibao.collector.console.render import page, span
from weibao.collector.console.web import Reader
from weibao.collector.contract.calendar import DayKind
from weibao.collector.contract.rules import ClockLimit, LimitKind
from weibao.collector.http.deps import context
from weibao.collector.http.routers.tickets import now as contract_now
from weibao.collector.tickets.model import LEVELS

router = APIRouter()


def limit_text(limit: ClockLimit, lang: str, t: Any) -> str:
    if limit.kind is LimitKind.DAY_END:
        return str(t("same_day") if limit.days_after == 0 else t("days_after", n=limit.days_after))
    text = span(limit.amount, "en" if lang == "en" else "zh")
    return str(t("working_time", d=text)) if limit.kind is LimitKind.WORKING else text


@router.get("/contract")
async def contract(request: Request, who: Reader) -> Response:
    files = context(request).contract.files

    def read() -> dict[str, Any]:
        cal = files.calendar
        year = contract_now().year
        days: list[tuple[date, str, str]] = []
        d = date(year, 1, 1)
        while d.year <= year:
            kind = cal.day_kind(d)
            if kind in (DayKind.HOLIDAY, DayKind.MAKEUP_WORKDAY):
                days.append((d, kind.value, cal.holiday_name(d) or ""))
            d += timedelta(days=1)
        return {"rules": files.rules, "calendar": cal, "year": year, "days": days,
                "covered": year in cal.covered_years, "sources": files.sources, "levels": LEVELS,
                "protection": [p for p in cal.protection if p.end.year >= year]}

    values = await run_in_threadpool(read)
    return page(request, who, "contract.html", limit_text=limit_text, **values)
