"""The contract's working calendar: Chinese working days, working hours and protection periods.

Working time is Monday to Friday 08:30-17:30, Asia/Shanghai, on Chinese working days: public holidays are
not working days and the weekend days declared make-up working days (调休) are. The holiday data comes
from files (``calendar_data/cn-holidays.yaml``, generated from chinesecalendar, plus optional site files:
see ``calendar_files.load_calendar``), never from a library at run time, so a user can add a year the
library does not know. For a year with no data the calendar logs one warning (per calendar and year) and
falls back to "Monday-Friday are working days".

Every public method accepts timezone-aware datetimes in any zone and works internally in Asia/Shanghai;
returned datetimes are in Asia/Shanghai. Naive datetimes are refused (ValueError): guessing a zone is how
clocks end up eight hours off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType

from weibao.collector.contract.intervals import Interval
from weibao.core.timeutil import SHANGHAI

log = logging.getLogger(__name__)


# a clock that would need more than ten years of working time is a configuration error, not a deadline
_MAX_DAYS = 3660


class DayKind(StrEnum):
    WORKDAY = "workday"            # an ordinary Monday-Friday
    WEEKEND = "weekend"            # an ordinary Saturday or Sunday
    HOLIDAY = "holiday"            # a public (or site) holiday, whatever the weekday
    MAKEUP_WORKDAY = "makeup"      # a weekend day declared a working day (调休)


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """The daily working window on working days (local time, start < end, same day)."""

    start: time = time(8, 30)
    end: time = time(17, 30)

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"working hours must start before they end ({self.start}-{self.end})")

    @property
    def length(self) -> timedelta:
        return datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)


@dataclass(frozen=True, slots=True)
class ThresholdOverride:
    """Replacement level-2 / level-1 durations for one rule row during a protection period."""

    level_2: timedelta | None = None
    level_1: timedelta | None = None


@dataclass(frozen=True, slots=True)
class ProtectionPeriod:
    """A heightened-protection period (重保: major holidays, major events) [start, end).

    During it the fault thresholds are stricter: every level duration is multiplied by
    ``threshold_factor`` (0 < factor <= 1) unless ``overrides`` names the rule row, and notifications
    also go to the extra recipients ``notify`` gives per channel of the notify config (e-mail addresses;
    mobile numbers to @ on DingTalk; user ids on WeCom). The one place protection periods are set.
    """

    name: str
    start: datetime
    end: datetime
    threshold_factor: float = 1.0
    overrides: Mapping[str, ThresholdOverride] = field(default_factory=lambda: MappingProxyType({}))
    notify: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end


def local(t: datetime) -> datetime:
    """``t`` in Asia/Shanghai; refuses naive datetimes."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t.isoformat()}: give a timezone-aware time")
    return t.astimezone(SHANGHAI)


def day_start(d: date) -> datetime:
    """Local midnight at the start of calendar day ``d``."""
    return datetime.combine(d, time(), SHANGHAI)


def end_of_day(t: datetime, days_after: int = 0) -> datetime:
    """The end of the local calendar day of ``t`` (plus ``days_after`` days): the following midnight."""
    return day_start(local(t).date() + timedelta(days=days_after + 1))


def month_start(d: date) -> datetime:
    return day_start(d.replace(day=1))


def next_month_start(d: date) -> datetime:
    first = d.replace(day=1)
    return day_start((first + timedelta(days=32)).replace(day=1))


class WorkingCalendar:
    """Working days, working hours and protection periods; pure and thread-safe after construction."""

    def __init__(self, *, holidays: Mapping[date, str], working_days: Mapping[date, str],
                 covered_years: Iterable[int], hours: WorkingHours | None = None,
                 protection: Sequence[ProtectionPeriod] = ()) -> None:
        clash = set(holidays) & set(working_days)
        if clash:
            raise ValueError(f"dates both holiday and working day: {sorted(clash)}")
        self._holidays = dict(holidays)
        self._working_days = dict(working_days)
        self.covered_years = frozenset(covered_years)
        self.hours = hours or WorkingHours()
        self.protection = tuple(sorted(protection, key=lambda p: p.start))
        self._warned: set[int] = set()
        self._lock = threading.Lock()

    # --- days ------------------------------------------------------------------------------------

    def _check_coverage(self, year: int) -> None:
        if year in self.covered_years or year in self._warned:
            return
        with self._lock:
            if year in self._warned:
                return
            self._warned.add(year)
        log.warning("no holiday data for %d: treating Monday-Friday as working days and ignoring public "
                    "holidays and make-up days for that year; add %d to a site calendar file "
                    "(weibao calendar add-year FILE --year %d --notice NOTICE)", year, year, year)

    def day_kind(self, d: date) -> DayKind:
        """What kind of day ``d`` is; warns once for a year without data."""
        self._check_coverage(d.year)
        if d in self._holidays:
            return DayKind.HOLIDAY
        weekend = d.weekday() >= 5
        if d in self._working_days:
            return DayKind.MAKEUP_WORKDAY if weekend else DayKind.WORKDAY
        return DayKind.WEEKEND if weekend else DayKind.WORKDAY

    def covered_until(self, today: date) -> date | None:
        """The last day of holiday data in the run of covered years that starts with ``today``'s year (None
        when that year has none): up to then public holidays and make-up days are known, not guessed."""
        year = today.year
        if year not in self.covered_years:
            return None
        while year + 1 in self.covered_years:
            year += 1
        return date(year, 12, 31)

    def is_working_day(self, d: date) -> bool:
        return self.day_kind(d) in (DayKind.WORKDAY, DayKind.MAKEUP_WORKDAY)

    def holiday_name(self, d: date) -> str | None:
        """The holiday or make-up day's name (e.g. "National Day"), None for an ordinary day."""
        return self._holidays.get(d) or self._working_days.get(d)

    def working_window(self, d: date) -> Interval | None:
        """The working hours of local day ``d`` as an interval, or None when ``d`` is not a working day."""
        if not self.is_working_day(d):
            return None
        return Interval(datetime.combine(d, self.hours.start, SHANGHAI),
                        datetime.combine(d, self.hours.end, SHANGHAI))

    # --- times -----------------------------------------------------------------------------------

    def is_working_time(self, t: datetime) -> bool:
        """Whether ``t`` falls inside working hours of a working day (start inclusive, end exclusive)."""
        window = self.working_window(local(t).date())
        return window is not None and window.contains(local(t))

    def working_intervals(self, a: datetime, b: datetime) -> list[Interval]:
        """The working-time parts of [a, b), in order (empty when b <= a)."""
        a, b = local(a), local(b)
        out: list[Interval] = []
        if b <= a:
            return out
        d = a.date()
        while d <= b.date():
            window = self.working_window(d)
            if window is not None:
                part = window.clip(a, b)
                if part is not None:
                    out.append(part)
            d += timedelta(days=1)
        return out

    def working_seconds_between(self, a: datetime, b: datetime) -> float:
        """Seconds of working time in [a, b); 0 when b <= a."""
        return sum(iv.duration.total_seconds() for iv in self.working_intervals(a, b))

    def split(self, a: datetime, b: datetime) -> tuple[float, float]:
        """(working seconds, non-working seconds) of [a, b)."""
        if b <= a:
            return 0.0, 0.0
        working = self.working_seconds_between(a, b)
        return working, (b - a).total_seconds() - working

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The moment when ``amount`` of working time has passed since ``start``.

        Only time inside working hours of working days counts. A clock that runs out exactly at the end
        of a working day ends then (17:30), not at the next day's 08:30. ``amount`` <= 0 returns ``start``.
        """
        t = local(start)
        left = amount
        if left <= timedelta():
            return t
        d = t.date()
        for _ in range(_MAX_DAYS):
            window = self.working_window(d)
            if window is not None and t < window.end:
                begin = max(t, window.start)
                room = window.end - begin
                if left <= room:
                    return begin + left
                left -= room
            d += timedelta(days=1)
        raise ValueError(f"{amount} of working time does not fit in {_MAX_DAYS} days after {start}")

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """``add_working_time`` with the amount in hours ("< 1 working day" is 9 working hours)."""
        return self.add_working_time(start, timedelta(hours=hours))

    # --- protection ------------------------------------------------------------------------------

    def protection_at(self, t: datetime) -> ProtectionPeriod | None:
        """The protection period in force at ``t`` (the earliest-starting one if several overlap)."""
        local(t)
        for period in self.protection:
            if period.contains(t):
                return period
        return None

    def extra_recipients(self, channel: str, at: datetime) -> tuple[str, ...]:
        """Who else a notification sent at ``at`` on ``channel`` goes to: the protection periods in force."""
        out: dict[str, None] = {}
        for period in self.protection:
            if period.contains(at):
                for r in period.notify.get(channel, ()):
                    out.setdefault(r, None)
        return tuple(out)

    def protection_during(self, a: datetime, b: datetime) -> ProtectionPeriod | None:
        """The first protection period that overlaps [a, b] (an instant when a == b)."""
        for period in self.protection:
            if period.start <= b and a < period.end:
                return period
        return None
