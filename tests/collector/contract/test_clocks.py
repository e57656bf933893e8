"""SLA clocks computed by hand from contract.md: deadlines to the minute, pauses, provisional starts."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.collector.contract.conftest import at
from weibao.collector.contract.calendar import WorkingCalendar
from weibao.collector.contract.clocks import Clocks, Pause, compute_clocks
from weibao.collector.contract.rules import ContractRules


def clocks(rules: ContractRules, calendar: WorkingCalendar, level: int, start: str, *, now: str,
           accepted: str | None = None, restored: str | None = None, reported: str | None = None,
           pauses: tuple[Pause, ...] = ()) -> Clocks:
    def opt(t: str | None) -> datetime | None:
        return at(t) if t else None
    return compute_clocks(level, at(start), opt(accepted), opt(restored), opt(reported), pauses, calendar,
                          at(now), limits=rules.clocks)


def test_level_3_friday_1600(rules: ContractRules, calendar: WorkingCalendar) -> None:
    c = clocks(rules, calendar, 3, "2026-11-20 16:00", accepted="2026-11-20 16:00", now="2026-11-20 16:30")
    assert c.response.deadline == at("2026-11-20 16:20") and c.response.met
    # 9 working hours: 16:00-17:30 Friday, then 08:30-16:00 Monday 23 Nov
    assert c.restoration.start == at("2026-11-20 16:00") and not c.restoration.start_provisional
    assert c.restoration.deadline == at("2026-11-23 16:00")
    # next day = end of Saturday 21 Nov
    assert c.report.deadline == at("2026-11-22 00:00")
    assert not any(clock.breached for clock in c)


def test_level_3_not_yet_accepted_runs_from_response_deadline(rules: ContractRules,
                                                              calendar: WorkingCalendar) -> None:
    c = clocks(rules, calendar, 3, "2026-11-20 16:00", now="2026-11-20 16:05")
    assert c.restoration.start == at("2026-11-20 16:20") and c.restoration.start_provisional
    assert c.restoration.deadline == at("2026-11-23 16:20")
    assert c.response.due_soon(timedelta(minutes=15)) and not c.response.due_soon(timedelta(minutes=10))
    # late acceptance buys nothing: the restoration start stays at the response deadline
    late = clocks(rules, calendar, 3, "2026-11-20 16:00", accepted="2026-11-20 16:45", now="2026-11-20 17:00")
    assert late.response.breached and late.response.met_at == at("2026-11-20 16:45")
    assert late.restoration.deadline == at("2026-11-23 16:20")


def test_level_3_before_and_after_national_day(rules: ContractRules, calendar: WorkingCalendar) -> None:
    c = clocks(rules, calendar, 3, "2026-09-30 16:00", accepted="2026-09-30 16:00", now="2026-09-30 16:00")
    assert c.restoration.deadline == at("2026-10-08 16:00")
    assert c.report.deadline == at("2026-10-02 00:00")
    c = clocks(rules, calendar, 3, "2026-10-09 16:00", accepted="2026-10-09 16:00", now="2026-10-09 16:00")
    assert c.restoration.deadline == at("2026-10-10 16:00")   # Saturday 10 Oct is a make-up working day


def test_level_2_night(rules: ContractRules, calendar: WorkingCalendar) -> None:
    c = clocks(rules, calendar, 2, "2026-11-24 19:00", accepted="2026-11-24 19:08", now="2026-11-24 20:00")
    assert c.response.deadline == at("2026-11-24 19:10") and c.response.met
    assert c.restoration.deadline == at("2026-11-25 03:08")
    assert c.report.deadline == at("2026-11-25 00:00")   # same day
    assert c.report.due_soon(timedelta(hours=4)) and not c.restoration.due_soon(timedelta(hours=4))
    assert c.restoration.remaining() == timedelta(hours=7, minutes=8)
    late = clocks(rules, calendar, 2, "2026-11-24 19:00", accepted="2026-11-24 19:08", now="2026-11-25 00:00")
    assert late.report.breached and not late.restoration.breached


def test_met_exactly_at_the_deadline_is_a_breach(rules: ContractRules, calendar: WorkingCalendar) -> None:
    c = clocks(rules, calendar, 1, "2026-11-24 09:00", accepted="2026-11-24 09:05", now="2026-11-24 09:06")
    assert c.response.deadline == at("2026-11-24 09:05") and c.response.breached   # "< 5 minutes"
    c = clocks(rules, calendar, 1, "2026-11-24 09:00", accepted="2026-11-24 09:04:59", now="2026-11-24 09:06")
    assert not c.response.breached


def test_events_after_now_have_not_happened(rules: ContractRules, calendar: WorkingCalendar) -> None:
    c = clocks(rules, calendar, 2, "2026-11-24 09:00", accepted="2026-11-24 09:30", now="2026-11-24 09:20")
    assert c.response.met_at is None and c.response.breached
    assert c.restoration.start_provisional


def test_pauses_do_not_count(rules: ContractRules, calendar: WorkingCalendar) -> None:
    handed_over = (Pause(at("2026-11-24 10:00"), at("2026-11-24 11:00"), "carrier line fault"),)
    c = clocks(rules, calendar, 2, "2026-11-24 09:00", accepted="2026-11-24 09:05", now="2026-11-24 12:00",
               pauses=handed_over)
    assert c.response.deadline == at("2026-11-24 09:10")
    assert c.restoration.deadline == at("2026-11-24 18:05")
    assert c.report.deadline == at("2026-11-25 01:00")
    # a pause still open counts up to now
    c = clocks(rules, calendar, 2, "2026-11-24 09:00", accepted="2026-11-24 09:05", now="2026-11-24 10:30",
               pauses=(Pause(at("2026-11-24 10:00")),))
    assert c.restoration.deadline == at("2026-11-24 17:35")
    # working-time clock: only the paused working time is added back
    c = clocks(rules, calendar, 3, "2026-11-20 16:00", accepted="2026-11-20 16:00", now="2026-11-20 18:00",
               pauses=(Pause(at("2026-11-20 17:00"), at("2026-11-20 19:00")),))
    assert c.restoration.deadline == at("2026-11-23 16:30")


def test_api_shape(rules: ContractRules, calendar: WorkingCalendar) -> None:
    c = clocks(rules, calendar, 1, "2026-11-24 09:00", accepted="2026-11-24 09:03", now="2026-11-24 09:30")
    assert c.as_dict()["response"] == {"deadline": "2026-11-24T09:05:00+08:00",
                                       "met_at": "2026-11-24T09:03:00+08:00", "breached": False}
    assert c.as_dict()["restoration"]["met_at"] is None
    with pytest.raises(ValueError):
        clocks(rules, calendar, 4, "2026-11-24 09:00", now="2026-11-24 09:30")
