"""Fault levels of the contract's examples, computed by hand from contract.md, with their clocks.

Devices are probed every minute; samples are fed through the Evaluator exactly as they would arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from tests.collector.contract.conftest import at, every_minute
from weibao.collector.contract.calendar import WorkingCalendar
from weibao.collector.contract.calendar_files import load_calendar
from weibao.collector.contract.clocks import compute_clocks
from weibao.collector.contract.episodes import Episode
from weibao.collector.contract.evaluator import DeviceSpec, Evaluator
from weibao.collector.contract.levels import LevelDecision, level_of
from weibao.collector.contract.rules import Condition, ContractRules, TrackKey
from weibao.core.inventory import Category
from weibao.core.model import Sample

DOWN = TrackKey(Condition.DOWN)


def make(rules: ContractRules, category: Category, name: str = "dev-1") -> Evaluator:
    return Evaluator(rules, [DeviceSpec(name, category, probe_interval=timedelta(minutes=1))])


def feed(ev: Evaluator, metric: str, spans: Sequence[tuple[str, str, float]], device: str = "dev-1") -> None:
    for start, end, value in spans:
        for t in every_minute(at(start), at(end)):
            ev.observe(Sample(device, metric, value, t))


def decide(ev: Evaluator, rules: ContractRules, calendar: WorkingCalendar, now: str,
           key: TrackKey = DOWN, device: str = "dev-1") -> tuple[list[Episode], LevelDecision]:
    tracker = ev.tracker(device, key)
    episodes = tracker.episodes(at(now))
    assert episodes, "no fault episode"
    cat = rules.categories[ev.devices[device].category]
    return episodes, level_of(episodes[-1], tracker.cumulative(at(now)), cat, calendar, at(now))


def test_business_70_minutes_on_a_working_morning(rules: ContractRules, calendar: WorkingCalendar) -> None:
    ev = make(rules, Category.BUSINESS)
    feed(ev, "up", [("2026-11-24 08:00", "2026-11-24 09:00", 1), ("2026-11-24 09:00", "2026-11-24 09:59", 0)])
    _, before = decide(ev, rules, calendar, "2026-11-24 09:59")
    assert before.level == 3
    # ongoing: promoted the moment the single outage reaches 1 h of working time
    feed(ev, "up", [("2026-11-24 09:59", "2026-11-24 10:01", 0)])
    _, now = decide(ev, rules, calendar, "2026-11-24 10:00")
    assert (now.level, now.rule and now.rule.id, now.since) == (2, "business-working-single", at("2026-11-24 10:00"))
    feed(ev, "up", [("2026-11-24 10:01", "2026-11-24 10:10", 0), ("2026-11-24 10:10", "2026-11-24 11:00", 1)])
    (ep,), d = decide(ev, rules, calendar, "2026-11-24 11:00")
    assert (ep.start, ep.end, ep.duration) == (at("2026-11-24 09:00"), at("2026-11-24 10:10"), timedelta(minutes=70))
    assert ep.split(calendar) == (70 * 60, 0)
    assert d.level == 2 and d.since == at("2026-11-24 10:00")
    c = compute_clocks(2, ep.start, at("2026-11-24 09:06"), ep.end, at("2026-11-24 11:00"), (), calendar,
                       at("2026-11-24 11:00"), limits=rules.clocks)
    assert c.response.deadline == at("2026-11-24 09:10")
    assert c.restoration.deadline == at("2026-11-24 17:06")
    assert c.report.deadline == at("2026-11-25 00:00")
    assert not any(clock.breached for clock in c)
    # while it was still level 3 (09:30): 20 min, one working day, next day
    c3 = compute_clocks(3, ep.start, at("2026-11-24 09:06"), None, None, (), calendar, at("2026-11-24 09:30"),
                        limits=rules.clocks)
    assert c3.response.deadline == at("2026-11-24 09:20")
    assert c3.restoration.deadline == at("2026-11-25 09:06")   # 8 h 24 min Tuesday + 36 min Wednesday
    assert c3.report.deadline == at("2026-11-26 00:00")


def test_business_2h05_is_level_1_and_clocks_apply_from_the_start(rules: ContractRules,
                                                                  calendar: WorkingCalendar) -> None:
    ev = make(rules, Category.BUSINESS)
    feed(ev, "up", [("2026-11-24 08:50", "2026-11-24 09:00", 1), ("2026-11-24 09:00", "2026-11-24 11:05", 0),
                    ("2026-11-24 11:05", "2026-11-24 11:30", 1)])
    (ep,), d = decide(ev, rules, calendar, "2026-11-24 11:30")
    assert ep.duration == timedelta(hours=2, minutes=5)
    assert (d.level, d.rule and d.rule.id, d.since) == (1, "business-working-single", at("2026-11-24 11:00"))
    _, d2 = decide(ev, rules, calendar, "2026-11-24 10:30")   # replayed: level 2 then
    assert d2.level == 2 and d2.since == at("2026-11-24 10:00")
    # accepted at 09:06 met level 2's 10 minutes, but level 1's 5 minutes apply from the fault's start
    c = compute_clocks(1, ep.start, at("2026-11-24 09:06"), ep.end, at("2026-11-24 10:00"), (), calendar,
                       at("2026-11-24 11:30"), limits=rules.clocks)
    assert c.response.deadline == at("2026-11-24 09:05") and c.response.breached
    assert c.restoration.start == at("2026-11-24 09:05")
    assert c.restoration.deadline == at("2026-11-24 13:05") and not c.restoration.breached
    assert c.report.deadline == at("2026-11-24 11:05") and not c.report.breached


def test_four_35_minute_outages_in_one_working_day(rules: ContractRules, calendar: WorkingCalendar) -> None:
    ev = make(rules, Category.BUSINESS)
    spans = [("2026-11-24 08:00", "2026-11-24 08:40", 1)]
    for start, end, nxt in (("08:40", "09:15", "10:00"), ("10:00", "10:35", "13:00"),
                            ("13:00", "13:35", "15:00"), ("15:00", "15:35", "16:00")):
        spans += [(f"2026-11-24 {start}", f"2026-11-24 {end}", 0), (f"2026-11-24 {end}", f"2026-11-24 {nxt}", 1)]
    feed(ev, "up", spans)
    tracker = ev.tracker("dev-1", DOWN)
    now = at("2026-11-24 16:00")
    episodes = tracker.episodes(now)
    assert [e.duration for e in episodes] == [timedelta(minutes=35)] * 4
    cat = rules.categories[Category.BUSINESS]
    levels = [level_of(e, tracker.cumulative(now), cat, calendar, now) for e in episodes]
    assert [lv.level for lv in levels] == [3, 3, 3, 2]
    # 3 x 35 = 105 min before the fourth; 2 h reached 15 min into it
    assert levels[3].rule is not None and levels[3].rule.id == "business-working-day"
    assert levels[3].since == at("2026-11-24 15:15")
    c = compute_clocks(2, episodes[3].start, at("2026-11-24 15:04"), episodes[3].end, None, (), calendar, now,
                       limits=rules.clocks)
    assert c.response.deadline == at("2026-11-24 15:10")
    assert c.restoration.deadline == at("2026-11-24 23:04")
    assert c.report.deadline == at("2026-11-25 00:00") and not c.report.breached


def test_three_and_a_half_hours_at_night(rules: ContractRules, calendar: WorkingCalendar) -> None:
    ev = make(rules, Category.BUSINESS)
    feed(ev, "up", [("2026-11-24 18:30", "2026-11-24 19:00", 1), ("2026-11-24 19:00", "2026-11-24 22:30", 0),
                    ("2026-11-24 22:30", "2026-11-24 23:00", 1)])
    (ep,), d = decide(ev, rules, calendar, "2026-11-24 23:00")
    assert ep.split(calendar) == (0, 3.5 * 3600)
    assert (d.level, d.rule and d.rule.id, d.since) == (2, "business-nonworking-day", at("2026-11-24 22:00"))
    c = compute_clocks(2, ep.start, at("2026-11-24 19:08"), None, None, (), calendar, at("2026-11-24 20:00"),
                       limits=rules.clocks)
    assert c.response.deadline == at("2026-11-24 19:10")
    assert c.restoration.deadline == at("2026-11-25 03:08")
    assert c.report.deadline == at("2026-11-25 00:00")


def test_night_outage_across_midnight_splits_into_two_days(rules: ContractRules,
                                                           calendar: WorkingCalendar) -> None:
    ev = make(rules, Category.BUSINESS)
    feed(ev, "up", [("2026-11-24 21:30", "2026-11-24 22:00", 1), ("2026-11-24 22:00", "2026-11-25 01:30", 0),
                    ("2026-11-25 01:30", "2026-11-25 02:00", 1)])
    (ep,), d = decide(ev, rules, calendar, "2026-11-25 02:00")
    assert ep.duration == timedelta(hours=3, minutes=30)
    assert d.level == 3   # 2 h on the 24th, 1.5 h on the 25th: neither day reaches 3 h


def test_same_outage_on_a_public_holiday(rules: ContractRules, calendar: WorkingCalendar) -> None:
    ev = make(rules, Category.BUSINESS)
    feed(ev, "up", [("2026-10-01 08:30", "2026-10-01 09:00", 1), ("2026-10-01 09:00", "2026-10-01 12:30", 0),
                    ("2026-10-01 12:30", "2026-10-01 13:00", 1)])
    (ep,), d = decide(ev, rules, calendar, "2026-10-01 13:00")
    assert ep.split(calendar) == (0, 3.5 * 3600)
    assert (d.level, d.rule and d.rule.id, d.since) == (2, "business-nonworking-day", at("2026-10-01 12:00"))
    c = compute_clocks(2, ep.start, None, None, None, (), calendar, at("2026-10-01 09:05"), limits=rules.clocks)
    assert c.restoration.start_provisional and c.restoration.deadline == at("2026-10-01 17:10")
    assert c.report.deadline == at("2026-10-02 00:00")


def test_same_outage_on_a_makeup_saturday(rules: ContractRules, calendar: WorkingCalendar) -> None:
    ev = make(rules, Category.BUSINESS)
    feed(ev, "up", [("2026-10-10 08:30", "2026-10-10 09:00", 1), ("2026-10-10 09:00", "2026-10-10 12:30", 0),
                    ("2026-10-10 12:30", "2026-10-10 13:00", 1)])
    (ep,), d = decide(ev, rules, calendar, "2026-10-10 13:00")
    assert ep.split(calendar) == (3.5 * 3600, 0)
    assert (d.level, d.rule and d.rule.id, d.since) == (1, "business-working-single", at("2026-10-10 11:00"))
    c = compute_clocks(1, ep.start, at("2026-10-10 09:03"), ep.end, None, (), calendar, at("2026-10-10 13:00"),
                       limits=rules.clocks)
    assert c.response.deadline == at("2026-10-10 09:05") and c.response.met
    assert c.restoration.deadline == at("2026-10-10 13:03") and c.restoration.met
    assert c.report.deadline == at("2026-10-10 11:03") and c.report.breached


def test_backbone_loss_35_percent_for_two_hours(rules: ContractRules, calendar: WorkingCalendar) -> None:
    ev = make(rules, Category.BACKBONE)
    loss = TrackKey(Condition.LOSS_OR_LATENCY, 30.0, 800.0)
    feed(ev, "icmp.loss_pct", [("2026-11-22 01:00", "2026-11-22 01:30", 0),
                               ("2026-11-22 01:30", "2026-11-22 02:00", 25),   # below 30 %: no fault
                               ("2026-11-22 02:00", "2026-11-22 04:00", 35),
                               ("2026-11-22 04:00", "2026-11-22 05:00", 0)])
    feed(ev, "up", [("2026-11-22 01:00", "2026-11-22 05:00", 1)])
    assert ev.tracker("dev-1", DOWN).episodes(at("2026-11-22 05:00")) == []
    (ep,), d = decide(ev, rules, calendar, "2026-11-22 05:00", key=loss)
    assert (ep.start, ep.end) == (at("2026-11-22 02:00"), at("2026-11-22 04:00"))
    assert (d.level, d.rule and d.rule.id, d.since) == (1, "backbone-loss-or-latency", at("2026-11-22 04:00"))
    _, d2 = decide(ev, rules, calendar, "2026-11-22 03:30", key=loss)
    assert (d2.level, d2.since) == (2, at("2026-11-22 03:00"))
    c = compute_clocks(1, ep.start, at("2026-11-22 02:04"), ep.end, None, (), calendar, at("2026-11-22 05:00"),
                       limits=rules.clocks)
    assert c.response.deadline == at("2026-11-22 02:05")
    assert c.restoration.deadline == at("2026-11-22 06:04") and c.restoration.met
    assert c.report.deadline == at("2026-11-22 04:04") and c.report.breached


def test_provincial_latency_450ms_for_65_minutes(rules: ContractRules, calendar: WorkingCalendar) -> None:
    ev = make(rules, Category.PROVINCIAL)
    latency = TrackKey(Condition.LOSS_OR_LATENCY, 15.0, 400.0)
    feed(ev, "icmp.rtt_ms", [("2026-11-24 09:00", "2026-11-24 10:00", 350),   # below 400 ms
                             ("2026-11-24 10:00", "2026-11-24 11:05", 450),
                             ("2026-11-24 11:05", "2026-11-24 11:30", 20)])
    (ep,), d = decide(ev, rules, calendar, "2026-11-24 11:30", key=latency)
    assert ep.duration == timedelta(minutes=65)
    assert (d.level, d.rule and d.rule.id, d.since) == (2, "provincial-loss-or-latency", at("2026-11-24 11:00"))
    c = compute_clocks(2, ep.start, at("2026-11-24 10:09"), ep.end, None, (), calendar, at("2026-11-24 11:30"),
                       limits=rules.clocks)
    assert c.response.deadline == at("2026-11-24 10:10") and c.response.met
    assert c.restoration.deadline == at("2026-11-24 18:09")


def test_an_hour_of_loss_then_an_hour_of_latency_is_two_hours(rules: ContractRules,
                                                                calendar: WorkingCalendar) -> None:
    # contract.md: "loss or latency" is one condition. A backbone link, every minute one ICMP burst (its loss
    # and its round-trip time at the same time): 10:00-11:00 loss 40 % (rtt 20 ms), 11:00-12:00 loss 0 %
    # but rtt 900 ms, then clean. One fault 10:00-12:00 = 2 h: level 2 at 11:00, level 1 at 12:00
    ev = make(rules, Category.BACKBONE)
    for t in every_minute(at("2026-11-24 09:30"), at("2026-11-24 12:30")):
        bad_loss = at("2026-11-24 10:00") <= t < at("2026-11-24 11:00")
        bad_rtt = at("2026-11-24 11:00") <= t < at("2026-11-24 12:00")
        ev.observe(Sample("dev-1", "up", 1.0, t))
        ev.observe(Sample("dev-1", "icmp.loss_pct", 40.0 if bad_loss else 0.0, t))
        ev.observe(Sample("dev-1", "icmp.rtt_ms", 900.0 if bad_rtt else 20.0, t))
    key = TrackKey(Condition.LOSS_OR_LATENCY, 30.0, 800.0)
    (ep,), d = decide(ev, rules, calendar, "2026-11-24 12:29", key=key)
    assert (ep.start, ep.end, ep.duration) == (at("2026-11-24 10:00"), at("2026-11-24 12:00"), 2 * timedelta(hours=1))
    assert (d.level, d.since) == (1, at("2026-11-24 12:00"))
    _, d2 = decide(ev, rules, calendar, "2026-11-24 11:30", key=key)
    assert (d2.level, d2.since) == (2, at("2026-11-24 11:00"))
    # the same hours as two separate conditions would have been two faults of 1 h each: level 2 at most


def test_processing_12_hours_over_a_month(rules: ContractRules, calendar: WorkingCalendar) -> None:
    ev = make(rules, Category.PROCESSING)
    days = ["02", "03", "04", "05", "06", "09", "10", "11"]
    for day in days:   # 8 outages of 1 h 30 min: below every single and per-day row
        feed(ev, "up", [(f"2026-11-{day} 09:50", f"2026-11-{day} 10:00", 1),
                        (f"2026-11-{day} 10:00", f"2026-11-{day} 11:30", 0),
                        (f"2026-11-{day} 11:30", f"2026-11-{day} 11:40", 1)])
    tracker = ev.tracker("dev-1", DOWN)
    now = at("2026-11-11 12:00")
    episodes = tracker.episodes(now)
    assert len(episodes) == 8
    cat = rules.categories[Category.PROCESSING]
    levels = [level_of(e, tracker.cumulative(now), cat, calendar, now) for e in episodes]
    assert [lv.level for lv in levels] == [3] * 7 + [2]
    assert levels[-1].rule is not None and levels[-1].rule.id == "processing-month"
    assert levels[-1].since == at("2026-11-11 11:30")


def test_protection_period_makes_thresholds_stricter(rules: ContractRules, tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("protection_periods:\n  - name: major event\n    start: 2026-11-24T00:00:00+08:00\n"
                    "    end: 2026-11-25T00:00:00+08:00\n    threshold_factor: 0.5\n", encoding="utf-8")
    cal = load_calendar(site)
    ev = make(rules, Category.BUSINESS)
    feed(ev, "up", [("2026-11-24 09:00", "2026-11-24 09:35", 0), ("2026-11-24 09:35", "2026-11-24 10:00", 1)])
    _, d = decide(ev, rules, cal, "2026-11-24 10:00")
    assert (d.level, d.since) == (2, at("2026-11-24 09:30"))
    assert d.protection is not None and d.protection.name == "major event"


@pytest.mark.parametrize("category,level", [(Category.MIS, 3), (Category.REALTIME, 2)])
def test_same_outage_other_categories(rules: ContractRules, calendar: WorkingCalendar, category: Category,
                                      level: int) -> None:
    # 1 h 40 min at night: mis needs 2 h per day; realtime's per-day row is 1.5 h at any hour
    ev = make(rules, category)
    feed(ev, "up", [("2026-11-24 20:00", "2026-11-24 21:40", 0), ("2026-11-24 21:40", "2026-11-24 22:00", 1)])
    _, d = decide(ev, rules, calendar, "2026-11-24 22:00")
    assert d.level == level


def test_an_outage_across_17_30_by_either_reading(rules: ContractRules, calendar: WorkingCalendar) -> None:
    from weibao.collector.contract.rules import WorkingSingle

    # Tuesday 24 Nov, business: down 17:00-19:00, up again after
    ev = make(rules, Category.BUSINESS)
    feed(ev, "up", [("2026-11-24 16:30", "2026-11-24 17:00", 1), ("2026-11-24 17:00", "2026-11-24 19:00", 0),
                    ("2026-11-24 19:00", "2026-11-24 19:10", 1)])
    tracker = ev.tracker("dev-1", DOWN)
    (ep,) = tracker.episodes(at("2026-11-24 19:10"))
    cat = rules.categories[Category.BUSINESS]
    now = at("2026-11-24 19:10")
    # in_hours_part (the shipped reading): 17:00-17:30 = 30 min in working hours < 1 h; per day in working
    # hours 30 min < 2 h; outside working hours 17:30-19:00 = 90 min < 3 h: level 3
    default = level_of(ep, tracker.cumulative(now), cat, calendar, now)
    assert rules.evaluation.working_single is WorkingSingle.IN_HOURS_PART and default.level == 3
    # whole_outage: all 2 h count once part of it is in working hours: >= 1 h at 18:00, >= 2 h at 19:00
    whole = level_of(ep, tracker.cumulative(now), cat, calendar, now, working_single=WorkingSingle.WHOLE_OUTAGE)
    assert (whole.level, whole.since, whole.rule and whole.rule.id) == (1, at("2026-11-24 19:00"),
                                                                         "business-working-single")
    level_2 = level_of(ep, tracker.cumulative(now), cat, calendar, at("2026-11-24 18:30"),
                       working_single=WorkingSingle.WHOLE_OUTAGE)
    assert (level_2.level, level_2.since) == (2, at("2026-11-24 18:00"))
    # an outage entirely after hours is not a working-hours outage under either reading
    night = make(rules, Category.BUSINESS, "dev-2")
    feed(night, "up", [("2026-11-24 19:30", "2026-11-24 20:00", 1), ("2026-11-24 20:00", "2026-11-24 22:00", 0)],
         device="dev-2")
    tr = night.tracker("dev-2", DOWN)
    (nep,) = tr.episodes(at("2026-11-24 22:00"))
    assert level_of(nep, tr.cumulative(at("2026-11-24 22:00")), cat, calendar, at("2026-11-24 22:00"),
                    working_single=WorkingSingle.WHOLE_OUTAGE).level == 3
