"""Load the working calendar from the shipped holiday file and optional site calendar files.

A calendar file (the shipped ``calendar_data/cn-holidays.yaml`` and any site file share one schema, every
key optional)::

    years:                       # national data per year; a year present and not null counts as covered
      2027:
        holidays:     [{date: 2027-01-01, name: New Year's Day}]
        working_days: [{date: 2027-..., name: ...}]
    holidays:     [{date: 2026-06-15, name: site closed}]     # extra site holidays
    working_days: [{date: 2026-06-20, name: stocktaking}]     # extra site working days
    hours: {start: "08:30", end: "17:30"}                     # different working hours
    protection_periods:
      - name: National Day 2026
        start: 2026-09-30T18:00:00+08:00                      # naive times are Asia/Shanghai
        end: 2026-10-08T08:30:00+08:00
        threshold_factor: 0.5                                 # every level duration halved
        overrides: {business-working-single: {level_2: 30m, level_1: 1h}}
        notify: {mail: [duty-manager@example.com], ding: ["13800000000"]}   # extra recipients per channel

Files apply in order, later wins: a later file's ``years`` entry replaces an earlier one for that year,
and a date a later file lists as a holiday stops being a working day (and the other way round).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from weibao.collector.contract.calendar import (
    ProtectionPeriod,
    ThresholdOverride,
    WorkingCalendar,
    WorkingHours,
)
from weibao.collector.contract.durations import parse_duration
from weibao.core.errors import ConfigError, Problem
from weibao.core.timeutil import SHANGHAI
from weibao.core.yamlsrc import load_yaml, pydantic_problems

SHIPPED_HOLIDAYS = Path(__file__).parent / "calendar_data" / "cn-holidays.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DayEntry(_Strict):
    date: date
    name: str = ""


class YearEntry(_Strict):
    holidays: list[DayEntry] = []
    working_days: list[DayEntry] = []


def _as_time(v: Any) -> Any:
    # YAML 1.1 reads 17:30 as the sexagesimal integer 1050
    if isinstance(v, int) and not isinstance(v, bool):
        return time(v // 60, v % 60)
    return v


class HoursEntry(_Strict):
    start: time
    end: time

    _times = field_validator("start", "end", mode="before")(_as_time)

    @model_validator(mode="after")
    def _ordered(self) -> HoursEntry:
        if not self.start < self.end:
            raise ValueError("working hours must start before they end, on the same day")
        return self


class OverrideEntry(_Strict):
    level_2: str | None = None
    level_1: str | None = None

    @field_validator("level_2", "level_1")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v


class ProtectionEntry(_Strict):
    name: str = Field(min_length=1)
    start: datetime
    end: datetime
    threshold_factor: float = Field(1.0, gt=0, le=1)
    overrides: dict[str, OverrideEntry] = {}
    # extra recipients per channel of the notify config (its channel names; checked when both are loaded)
    notify: dict[str, list[str]] = {}

    @model_validator(mode="after")
    def _ordered(self) -> ProtectionEntry:
        if _aware(self.start) >= _aware(self.end):
            raise ValueError("a protection period must start before it ends")
        return self


class CalendarFile(_Strict):
    source: str | None = None
    years: dict[int, YearEntry | None] = {}
    holidays: list[DayEntry] = []
    working_days: list[DayEntry] = []
    hours: HoursEntry | None = None
    protection_periods: list[ProtectionEntry] = []


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=SHANGHAI)


def _read(path: Path) -> CalendarFile:
    src = load_yaml(path)
    try:
        model = CalendarFile.model_validate(src.data)
    except ValidationError as exc:
        raise ConfigError(pydantic_problems(src, exc)) from exc
    problems: list[Problem] = []
    for year, entry in model.years.items():
        if entry is None:
            continue
        for key in ("holidays", "working_days"):
            for i, day in enumerate(getattr(entry, key)):
                if day.date.year != year:
                    problems.append(src.problem(("years", year, key, i), f"{day.date} is not in {year}"))
        both = {d.date for d in entry.holidays} & {d.date for d in entry.working_days}
        for d in sorted(both):
            problems.append(src.problem(("years", year), f"{d} is both a holiday and a working day"))
    both = {d.date for d in model.holidays} & {d.date for d in model.working_days}
    for d in sorted(both):
        problems.append(src.problem(("holidays",), f"{d} is both a holiday and a working day"))
    if problems:
        raise ConfigError(problems)
    return model


def load_calendar(*site_files: Path | str, base: Path | str | None = SHIPPED_HOLIDAYS) -> WorkingCalendar:
    """The calendar from ``base`` (the shipped holiday file by default) then each site file in order.

    Raises ConfigError naming file, line and key for any invalid file.
    """
    files = ([Path(base)] if base is not None else []) + [Path(p) for p in site_files]
    models = [_read(p) for p in files]
    years: dict[int, YearEntry | None] = {}
    for m in models:
        years.update(m.years)
    holidays: dict[date, str] = {}
    working: dict[date, str] = {}

    def apply(hol: Iterable[DayEntry], work: Iterable[DayEntry]) -> None:
        for day in hol:
            working.pop(day.date, None)
            holidays[day.date] = day.name
        for day in work:
            holidays.pop(day.date, None)
            working[day.date] = day.name

    for entry in years.values():
        if entry is not None:
            apply(entry.holidays, entry.working_days)
    hours: WorkingHours | None = None
    protection: list[ProtectionPeriod] = []
    for m in models:
        apply(m.holidays, m.working_days)
        if m.hours is not None:
            hours = WorkingHours(m.hours.start, m.hours.end)
        protection.extend(_protection(p) for p in m.protection_periods)
    return WorkingCalendar(holidays=holidays, working_days=working,
                           covered_years=[y for y, e in years.items() if e is not None],
                           hours=hours, protection=protection)


def _protection(p: ProtectionEntry) -> ProtectionPeriod:
    overrides = {
        rule: ThresholdOverride(parse_duration(o.level_2) if o.level_2 else None,
                                parse_duration(o.level_1) if o.level_1 else None)
        for rule, o in p.overrides.items()
    }
    return ProtectionPeriod(name=p.name, start=_aware(p.start), end=_aware(p.end),
                            threshold_factor=p.threshold_factor, overrides=MappingProxyType(overrides),
                            notify=MappingProxyType({ch: tuple(rs) for ch, rs in p.notify.items()}))
