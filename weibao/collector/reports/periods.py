"""Report periods in contract time (Asia/Shanghai): ``2026-11-25``, ``2026-W48``, ``2026-11``, ``2026-Q4``, ``2026``.

A period is the half-open interval [start, end) between local midnights: a day, an ISO week (Monday to
Sunday), a calendar month, a quarter or a year. ``parse_period(kind, text)`` refuses text that is not the
kind's form, or names a week, month or quarter that does not exist, with a ``PeriodError`` (a 422 at
the API).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from weibao.collector.contract.calendar import day_start, local


class Kind(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"
    FAULT = "fault"


PERIODIC = (Kind.WEEKLY, Kind.MONTHLY, Kind.QUARTERLY, Kind.ANNUAL)
FORMS = {Kind.DAILY: "YYYY-MM-DD", Kind.WEEKLY: "YYYY-Www (ISO week, e.g. 2026-W48)",
         Kind.MONTHLY: "YYYY-MM", Kind.QUARTERLY: "YYYY-Qn", Kind.ANNUAL: "YYYY"}
# ASCII digits only (\d would also take full-width and other scripts' digits), the whole text, nothing around
_PATTERNS = {Kind.DAILY: re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})"),
             Kind.WEEKLY: re.compile(r"([0-9]{4})-W([0-9]{2})"), Kind.MONTHLY: re.compile(r"([0-9]{4})-([0-9]{2})"),
             Kind.QUARTERLY: re.compile(r"([0-9]{4})-Q([1-4])"), Kind.ANNUAL: re.compile(r"([0-9]{4})")}
# the years a report may cover: every period inside has its neighbours (the day before, the week after)
# within the range of dates and times
YEARS = range(1970, 3000)


class PeriodError(ValueError):
    """A period that is malformed or does not exist."""


@dataclass(frozen=True, slots=True)
class Period:
    """One report period: its kind, its key (``2026-W48``) and [start, end) at local midnights."""

    kind: Kind
    key: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def days(self) -> list[date]:
        d, out = self.start.date(), []
        while d < self.end.date():
            out.append(d)
            d += timedelta(days=1)
        return out

    def months(self) -> list[Period]:
        """The calendar months inside the period (for quarterly and annual reports)."""
        out, d = [], self.start.date()
        while d < self.end.date():
            out.append(month(d.year, d.month))
            d = out[-1].end.date()
        return out


def _span(kind: Kind, key: str, first: date, after: date) -> Period:
    return Period(kind, key, day_start(first), day_start(after))


def day(d: date) -> Period:
    return _span(Kind.DAILY, d.isoformat(), d, d + timedelta(days=1))


def week(year: int, number: int) -> Period:
    monday = date.fromisocalendar(year, number, 1)
    return _span(Kind.WEEKLY, f"{year}-W{number:02d}", monday, monday + timedelta(days=7))


def month(year: int, number: int) -> Period:
    first = date(year, number, 1)
    after = date(year + (number == 12), number % 12 + 1, 1)
    return _span(Kind.MONTHLY, f"{year}-{number:02d}", first, after)


def quarter(year: int, number: int) -> Period:
    first = date(year, 3 * number - 2, 1)
    after = date(year + 1, 1, 1) if number == 4 else date(year, 3 * number + 1, 1)
    return _span(Kind.QUARTERLY, f"{year}-Q{number}", first, after)


def year(number: int) -> Period:
    return _span(Kind.ANNUAL, str(number), date(number, 1, 1), date(number + 1, 1, 1))


def parse_period(kind: Kind | str, text: str) -> Period:
    """The period ``text`` of ``kind``; ``PeriodError`` names the expected form when it is not one."""
    try:
        k = Kind(kind)
    except ValueError as exc:
        raise PeriodError(f"unknown report kind {kind!r}") from exc
    if k is Kind.FAULT:
        raise PeriodError("a fault report is named by its ticket id, not a period")
    m = _PATTERNS[k].fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise PeriodError(f"{text!r} is not a {k.value} period: write {FORMS[k]}")
    nums = [int(g) for g in m.groups()]
    if nums[0] not in YEARS:
        raise PeriodError(f"{text!r}: a report covers a period in the years {YEARS[0]} to {YEARS[-1]}")
    try:
        if k is Kind.DAILY:
            return day(date(nums[0], nums[1], nums[2]))
        if k is Kind.WEEKLY:
            return week(nums[0], nums[1])
        if k is Kind.MONTHLY:
            return month(nums[0], nums[1])
        if k is Kind.QUARTERLY:
            return quarter(nums[0], nums[1])
        return year(nums[0])
    except ValueError as exc:
        raise PeriodError(f"{text!r} is not a {k.value} period that exists: {exc}") from exc


def containing(kind: Kind, t: datetime) -> Period:
    """The period of ``kind`` that contains the moment ``t``."""
    d = local(t).date()
    if kind is Kind.DAILY:
        return day(d)
    if kind is Kind.WEEKLY:
        iso = d.isocalendar()
        return week(iso.year, iso.week)
    if kind is Kind.MONTHLY:
        return month(d.year, d.month)
    if kind is Kind.QUARTERLY:
        return quarter(d.year, (d.month - 1) // 3 + 1)
    if kind is Kind.ANNUAL:
        return year(d.year)
    raise PeriodError("a fault report has no period")


def previous(p: Period) -> Period:
    """The period of the same kind just before ``p``."""
    return containing(p.kind, p.start - timedelta(seconds=1))
