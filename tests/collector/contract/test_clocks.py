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


def promoted(rules: ContractRules, calendar: WorkingCalendar, start: str, promotions: list[tuple[str, int]], *,
             now: str, accepted: str | None = None, dispatched: str | None = None, onsite: str | None = None,
             pauses: tuple[Pause, ...] = ()) -> Clocks:
    return compute_clocks(3, at(start), at(accepted) if accepted else None, None, None, pauses, calendar,
                          at(now), limits=rules.clocks, promotions=[(at(w), lvl) for w, lvl in promotions],
                          dispatched_at=at(dispatched) if dispatched else None,
                          onsite_at=at(onsite) if onsite else None)


def test_promotion_after_acceptance_keeps_what_is_done(rules: ContractRules, calendar: WorkingCalendar) -> None:
    # Wednesday 25 Nov: opened 10:00 at level 3, accepted 10:08, promoted to level 1 at 12:00
    c = promoted(rules, calendar, "2026-11-25 10:00", [("2026-11-25 12:00", 1)], accepted="2026-11-25 10:08",
                 now="2026-11-25 12:30")
    # response met at 10:08, before the promotion: stays met against its level-3 deadline
    assert c.response.deadline == at("2026-11-25 10:20") and c.response.met and not c.response.breached
    # restoration: level 3 from 10:08 = 9 working hours = Thu 10:08 (7 h 22 min on Wednesday, 1 h 38 min on
    # Thursday from 08:30); at 12:00 it runs, so it ends at min(Thu 10:08, 12:00 + 4 h) = Wed 16:00
    assert c.restoration.deadline == at("2026-11-25 16:00") and c.restoration.level == 1
    # report: level 3 "next day" from 10:08 = Fri 00:00; at 12:00: min(Fri 00:00, 12:00 + 2 h) = 14:00
    assert c.report.deadline == at("2026-11-25 14:00") and not c.report.breached


def test_promotion_at_night_counts_same_day_from_the_promotion(rules: ContractRules,
                                                                calendar: WorkingCalendar) -> None:
    # Thursday 26 Nov: opened 01:00, accepted 01:10, promoted to level 2 at 03:00
    c = promoted(rules, calendar, "2026-11-26 01:00", [("2026-11-26 03:00", 2)], accepted="2026-11-26 01:10",
                 now="2026-11-26 03:30")
    # report: level 3 "next day" from 01:10 = end of Friday (Sat 00:00); level 2 "same day" counted from the
    # promotion's day = end of Thursday: min = Fri 27 Nov 00:00, not before the promotion
    assert c.report.deadline == at("2026-11-27 00:00") and not c.report.breached
    # restoration: level 3 = 9 working hours from 01:10 = Thu 08:30-17:30; level 2 from 03:00 = 8 h = 11:00
    assert c.restoration.deadline == at("2026-11-26 11:00")


def test_a_promotion_never_breaches_a_clock_before_it(rules: ContractRules, calendar: WorkingCalendar) -> None:
    # response still running at 10:10: min(10:20, 10:10 + 5 min) = 10:15
    c = promoted(rules, calendar, "2026-11-25 10:00", [("2026-11-25 10:10", 1)], now="2026-11-25 10:12")
    assert c.response.deadline == at("2026-11-25 10:15") and not c.response.breached
    # at 10:18: min(10:20, 10:23) = 10:20, the level-3 deadline stands
    c = promoted(rules, calendar, "2026-11-25 10:00", [("2026-11-25 10:18", 1)], now="2026-11-25 10:19")
    assert c.response.deadline == at("2026-11-25 10:20") and not c.response.breached
    # already breached at 10:20, promoted at 10:30: breached as it was, deadline 10:20
    c = promoted(rules, calendar, "2026-11-25 10:00", [("2026-11-25 10:30", 1)], now="2026-11-25 10:31")
    assert c.response.deadline == at("2026-11-25 10:20") and c.response.breached
    # two promotions: level 2 at 10:02 (min(10:20, 10:12) = 10:12), level 1 at 10:04 (min(10:12, 10:09))
    c = promoted(rules, calendar, "2026-11-25 10:00", [("2026-11-25 10:02", 2), ("2026-11-25 10:04", 1)],
                 now="2026-11-25 10:05")
    assert c.response.deadline == at("2026-11-25 10:09") and c.response.level == 1


def test_a_pause_moves_every_deadline_by_its_length(rules: ContractRules, calendar: WorkingCalendar) -> None:
    paused = (Pause(at("2026-11-25 10:30"), at("2026-11-25 11:30"), "handed to the ERP vendor"),)
    plain = promoted(rules, calendar, "2026-11-25 10:00", [], accepted="2026-11-25 10:05", now="2026-11-25 12:00")
    c = promoted(rules, calendar, "2026-11-25 10:00", [], accepted="2026-11-25 10:05", now="2026-11-25 12:00",
                 pauses=paused)
    # response met at 10:05, before the pause: unchanged
    assert c.response.deadline == plain.response.deadline == at("2026-11-25 10:20")
    # restoration: 9 working hours from 10:05 = Thu 10:05, plus the paused hour (working time) = Thu 11:05
    assert plain.restoration.deadline == at("2026-11-26 10:05")
    assert c.restoration.deadline == at("2026-11-26 11:05")
    # report: end of Thursday (Fri 00:00) plus the hour = Fri 01:00
    assert c.report.deadline == at("2026-11-27 01:00")
    # a pause before acceptance moves the response deadline: 10:20 + 30 min = 10:50, met at 10:40
    early = (Pause(at("2026-11-25 10:05"), at("2026-11-25 10:35")),)
    c = promoted(rules, calendar, "2026-11-25 10:00", [], accepted="2026-11-25 10:40", now="2026-11-25 10:45",
                 pauses=early)
    assert c.response.deadline == at("2026-11-25 10:50") and c.response.met


def test_on_site_clock_by_level(rules: ContractRules, calendar: WorkingCalendar) -> None:
    assert promoted(rules, calendar, "2026-11-25 10:00", [], now="2026-11-25 10:05").onsite is None
    # level 2 (promoted at 10:01): dispatched 10:10, 30 min to arrive = 10:40; on site at 10:35: met
    c = promoted(rules, calendar, "2026-11-25 10:00", [("2026-11-25 10:01", 2)], accepted="2026-11-25 10:03",
                 dispatched="2026-11-25 10:10", onsite="2026-11-25 10:35", now="2026-11-25 11:00")
    assert c.onsite is not None and c.onsite.deadline == at("2026-11-25 10:40") and c.onsite.met
    # level 1: 15 min = 10:25; on site at 10:30: breached
    c = promoted(rules, calendar, "2026-11-25 10:00", [("2026-11-25 10:01", 1)], accepted="2026-11-25 10:03",
                 dispatched="2026-11-25 10:10", onsite="2026-11-25 10:30", now="2026-11-25 11:00")
    assert c.onsite is not None and c.onsite.deadline == at("2026-11-25 10:25") and c.onsite.breached
    # level 3 and nobody there yet: 1 h = 11:10, still running at 11:00
    c = promoted(rules, calendar, "2026-11-25 10:00", [], accepted="2026-11-25 10:03",
                 dispatched="2026-11-25 10:10", now="2026-11-25 11:00")
    assert c.onsite is not None and c.onsite.deadline == at("2026-11-25 11:10") and not c.onsite.breached
    assert [k.name.value for k in c] == ["response", "restoration", "report", "onsite"]
