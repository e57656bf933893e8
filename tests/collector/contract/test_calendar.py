"""Working calendar: holidays and make-up days from the shipped data, working-time arithmetic, fallback."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.collector.contract.conftest import CST, at
from weibao.collector.contract.calendar import DayKind, WorkingCalendar
from weibao.collector.contract.calendar_data.generate import render
from weibao.collector.contract.calendar_files import SHIPPED_HOLIDAYS, load_calendar
from weibao.core.errors import ConfigError


def test_shipped_file_is_what_the_generator_writes() -> None:
    assert SHIPPED_HOLIDAYS.read_text(encoding="utf-8") == render()


def test_every_day_2004_2026_agrees_with_chinesecalendar(calendar: WorkingCalendar) -> None:
    d = date(2004, 1, 1)
    while d.year <= 2026:
        assert calendar.is_working_day(d) == chinese_calendar.is_workday(d), d
        d += timedelta(days=1)
    assert set(range(2004, 2027)) <= calendar.covered_years
    assert 2027 not in calendar.covered_years


def test_national_day_2026(calendar: WorkingCalendar) -> None:
    assert calendar.day_kind(date(2026, 10, 1)) == DayKind.HOLIDAY
    assert calendar.holiday_name(date(2026, 10, 1)) == "National Day"
    assert calendar.day_kind(date(2026, 10, 10)) == DayKind.MAKEUP_WORKDAY   # a Saturday
    assert calendar.day_kind(date(2026, 9, 20)) == DayKind.MAKEUP_WORKDAY    # a Sunday
    assert calendar.day_kind(date(2026, 11, 21)) == DayKind.WEEKEND
    assert calendar.is_working_time(at("2026-10-10 09:00"))
    assert not calendar.is_working_time(at("2026-10-01 09:00"))


def test_working_time_bounds(calendar: WorkingCalendar) -> None:
    assert calendar.is_working_time(at("2026-11-24 08:30"))
    assert not calendar.is_working_time(at("2026-11-24 08:29:59"))
    assert not calendar.is_working_time(at("2026-11-24 17:30"))
    # the same instant written in UTC
    assert calendar.is_working_time(datetime(2026, 11, 24, 1, 0, tzinfo=ZoneInfo("UTC")))
    with pytest.raises(ValueError, match="naive"):
        calendar.is_working_time(datetime(2026, 11, 24, 9, 0))


def test_add_working_hours_examples_of_the_contract(calendar: WorkingCalendar) -> None:
    # Friday 16:00 + 9 working hours: 1.5 h on Friday, 7.5 h from Monday 08:30
    assert calendar.add_working_hours(at("2026-11-20 16:00"), 9) == at("2026-11-23 16:00")
    # Tuesday 20:00: the whole of Wednesday, ending exactly at 17:30
    assert calendar.add_working_hours(at("2026-11-24 20:00"), 9) == at("2026-11-25 17:30")
    # before National Day: Wednesday 30 Sep 16:00 -> Thursday 8 Oct 16:00 (1-7 Oct are holidays)
    assert calendar.add_working_hours(at("2026-09-30 16:00"), 9) == at("2026-10-08 16:00")
    # Friday 9 Oct 16:00 -> Saturday 10 Oct 16:00, a make-up working day
    assert calendar.add_working_hours(at("2026-10-09 16:00"), 9) == at("2026-10-10 16:00")


def test_split_and_seconds(calendar: WorkingCalendar) -> None:
    # Friday 16:00 -> Monday 10:00: 1.5 h + 1.5 h working, the rest not
    working, other = calendar.split(at("2026-11-20 16:00"), at("2026-11-23 10:00"))
    assert working == 3 * 3600
    assert other == (66 - 3) * 3600
    assert calendar.working_seconds_between(at("2026-10-01 00:00"), at("2026-10-08 00:00")) == 0
    assert calendar.split(at("2026-11-23 10:00"), at("2026-11-20 16:00")) == (0.0, 0.0)


def test_2027_falls_back_to_weekends_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    cal = load_calendar()   # a calendar of its own: the warning is once per calendar and year
    with caplog.at_level(logging.WARNING, logger="weibao.collector.contract.calendar"):
        assert cal.is_working_day(date(2027, 1, 1))        # New Year's Day, but no data: a Friday
        assert not cal.is_working_day(date(2027, 1, 2))    # Saturday
        assert cal.add_working_hours(at("2026-12-31 16:00"), 9) == at("2027-01-01 16:00")
        assert cal.is_working_time(at("2027-03-01 10:00"))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2027" in warnings[0].getMessage()


def test_site_file_adds_year_hours_holiday_and_protection(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "years:\n"
        "  2027:\n"
        "    holidays: [{date: 2027-01-01, name: New Year's Day}]\n"
        "    working_days: []\n"
        "holidays: [{date: 2026-11-24, name: site closed}]\n"
        "working_days: [{date: 2026-11-21, name: stocktaking}]\n"
        "hours: {start: '09:00', end: 18:00}\n"
        "protection_periods:\n"
        "  - name: year end\n"
        "    start: 2026-12-30T00:00:00\n"
        "    end: 2027-01-04T00:00:00+08:00\n"
        "    threshold_factor: 0.5\n"
        "    overrides: {business-working-single: {level_2: 20m}}\n"
        "    notify: {mail: [duty@example.com], ding: ['13800000000']}\n", encoding="utf-8")
    cal = load_calendar(site)
    assert 2027 in cal.covered_years
    assert not cal.is_working_day(date(2027, 1, 1))
    assert not cal.is_working_day(date(2026, 11, 24))
    assert cal.is_working_day(date(2026, 11, 21))
    assert cal.hours.start == time(9, 0) and cal.hours.end == time(18, 0)
    assert cal.is_working_time(at("2026-11-23 17:45"))
    period = cal.protection_at(at("2026-12-31 12:00"))
    assert period is not None and period.name == "year end"
    assert period.start == at("2026-12-30 00:00")
    assert period.overrides["business-working-single"].level_2 == timedelta(minutes=20)
    assert cal.extra_recipients("mail", at("2026-12-31 12:00")) == ("duty@example.com",)
    assert cal.extra_recipients("ding", at("2026-12-30 00:00")) == ("13800000000",)
    assert cal.extra_recipients("mail", at("2027-01-04 00:00")) == ()  # the end is outside
    assert cal.extra_recipients("wecom", at("2026-12-31 12:00")) == ()
    assert cal.protection_at(at("2027-01-04 00:00")) is None


def test_bad_site_file_names_file_line_and_key(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("years:\n  2027:\n    holidays:\n      - {date: 2026-05-01}\n"
                    "hours: {start: '18:00', end: '09:00'}\nholydays: []\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_calendar(site)
    text = str(err.value)
    assert f"{site}:6: holydays: unknown key" in text
    assert f"{site}:5: hours:" in text


def test_year_mismatch_is_reported(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("years:\n  2027:\n    holidays:\n      - {date: 2026-05-01}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"site.yaml:4: years.2027.holidays.0: 2026-05-01 is not in 2027"):
        load_calendar(site)


_instants = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 1),
                         timezones=st.just(CST))


@settings(max_examples=300, deadline=None)
@given(start=_instants, minutes=st.integers(min_value=0, max_value=60 * 80))
def test_add_working_time_inverts_working_seconds(calendar: WorkingCalendar, start: datetime,
                                                  minutes: int) -> None:
    amount = timedelta(minutes=minutes)
    end = calendar.add_working_time(start, amount)
    assert end >= start
    assert calendar.working_seconds_between(start, end) == pytest.approx(amount.total_seconds())
    if minutes:
        # it ends inside working time or exactly at the end of a working day
        assert calendar.is_working_time(end - timedelta(microseconds=1))


@settings(max_examples=300, deadline=None)
@given(a=_instants, hours=st.integers(min_value=0, max_value=24 * 40))
def test_split_adds_up(calendar: WorkingCalendar, a: datetime, hours: int) -> None:
    b = a + timedelta(hours=hours)
    working, other = calendar.split(a, b)
    assert working + other == pytest.approx((b - a).total_seconds())
    assert 0 <= working <= hours * 3600
