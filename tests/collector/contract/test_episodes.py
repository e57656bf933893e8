"""Fault episodes: hysteresis, re-opening, monitoring gaps, maintenance windows, upstream attachment."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import pytest

from tests.collector.contract.conftest import at, every_minute
from weibao.collector.contract.calendar import WorkingCalendar
from weibao.collector.contract.episodes import Signal, SignalKind
from weibao.collector.contract.evaluator import DeviceSpec, Evaluator
from weibao.collector.contract.levels import level_of
from weibao.collector.contract.maintenance import MaintenanceSchedule, MaintenanceWindow
from weibao.collector.contract.rules import Condition, ContractRules, TrackKey
from weibao.core.inventory import Category
from weibao.core.model import Sample

DOWN = TrackKey(Condition.DOWN)
MINUTE = timedelta(minutes=1)


def feed(ev: Evaluator, spans: Sequence[tuple[str, str, float]], device: str = "app-1",
         offset: timedelta = timedelta()) -> list[Signal]:
    out: list[Signal] = []
    for start, end, value in spans:
        for t in every_minute(at(start) + offset, at(end) + offset):
            out += ev.observe(Sample(device, "up", value, t))
    return out


def business(rules: ContractRules, maintenance: MaintenanceSchedule | None = None) -> Evaluator:
    return Evaluator(rules, [DeviceSpec("app-1", Category.BUSINESS, probe_interval=MINUTE)],
                     maintenance=maintenance)


def test_flapping_within_the_reopen_window_is_one_episode(rules: ContractRules,
                                                          calendar: WorkingCalendar) -> None:
    ev = business(rules)
    signals = feed(ev, [("2026-11-24 08:50", "2026-11-24 09:00", 1), ("2026-11-24 09:00", "2026-11-24 09:40", 0),
                        ("2026-11-24 09:40", "2026-11-24 09:50", 1), ("2026-11-24 09:50", "2026-11-24 10:15", 0),
                        ("2026-11-24 10:15", "2026-11-24 10:30", 1)])
    assert [(s.kind, s.at) for s in signals] == [
        (SignalKind.OPENED, at("2026-11-24 09:00")), (SignalKind.RESTORED, at("2026-11-24 09:40")),
        (SignalKind.REOPENED, at("2026-11-24 09:50")), (SignalKind.RESTORED, at("2026-11-24 10:15"))]
    tracker = ev.tracker("app-1", DOWN)
    (ep,) = tracker.episodes(at("2026-11-24 10:30"))
    assert (ep.start, ep.end, ep.reopen_count) == (at("2026-11-24 09:00"), at("2026-11-24 10:15"), 1)
    assert ep.duration == timedelta(minutes=65)   # the 10 good minutes are not outage
    d = level_of(ep, tracker.cumulative(at("2026-11-24 10:30")), rules.categories[Category.BUSINESS], calendar,
                 at("2026-11-24 10:30"))
    # one episode and ticket, but two outages ("一次", once): 40 and 25 min, each under the single row's 1 h,
    # and 65 min that day, under the per-day row's 2 h: level 3
    assert (d.level, d.since) == (3, None)


def test_a_returned_fault_counts_its_own_outage_for_the_single_rows(rules: ContractRules,
                                                                    calendar: WorkingCalendar) -> None:
    ev = business(rules)
    feed(ev, [("2026-11-24 08:50", "2026-11-24 09:00", 1), ("2026-11-24 09:00", "2026-11-24 09:40", 0),
              ("2026-11-24 09:40", "2026-11-24 09:50", 1), ("2026-11-24 09:50", "2026-11-24 11:00", 0),
              ("2026-11-24 11:00", "2026-11-24 11:10", 1)])
    tracker = ev.tracker("app-1", DOWN)
    (ep,) = tracker.episodes(at("2026-11-24 11:10"))
    assert ep.reopen_count == 1 and ep.restorations[0] == at("2026-11-24 09:40")
    d = level_of(ep, tracker.cumulative(at("2026-11-24 11:10")), rules.categories[Category.BUSINESS], calendar,
                 at("2026-11-24 11:10"))
    # the second outage (from 09:50) reaches 1 h at 10:50; the two together (40 + 60 min) would have at 10:10
    assert (d.level, d.since) == (2, at("2026-11-24 10:50"))


def test_fault_after_the_reopen_window_is_a_new_episode(rules: ContractRules) -> None:
    ev = business(rules)
    feed(ev, [("2026-11-24 09:00", "2026-11-24 09:10", 0), ("2026-11-24 09:10", "2026-11-24 09:41", 1),
              ("2026-11-24 09:41", "2026-11-24 09:45", 0), ("2026-11-24 09:45", "2026-11-24 09:50", 1)])
    assert len(ev.tracker("app-1", DOWN).episodes(at("2026-11-24 09:50"))) == 2


def test_hysteresis_too_few_good_samples_do_not_restore(rules: ContractRules) -> None:
    ev = business(rules)
    signals = feed(ev, [("2026-11-24 09:00", "2026-11-24 09:30", 0), ("2026-11-24 09:30", "2026-11-24 09:32", 1),
                        ("2026-11-24 09:32", "2026-11-24 09:40", 0)])
    assert [s.kind for s in signals] == [SignalKind.OPENED]
    ep = ev.tracker("app-1", DOWN).open_episode(at("2026-11-24 09:40"))
    assert ep is not None and ep.is_open
    assert ep.duration == timedelta(minutes=38)


def test_silent_agent_is_a_gap_not_an_outage(rules: ContractRules) -> None:
    ev = business(rules)
    feed(ev, [("2026-11-24 09:00", "2026-11-24 10:00", 1)])
    assert ev.advance(at("2026-11-24 10:02")) == []                  # 3 missed probes are not a gap yet
    (gap,) = ev.advance(at("2026-11-24 10:03"))
    assert (gap.kind, gap.device, gap.at) == (SignalKind.GAP_STARTED, "app-1", at("2026-11-24 10:00"))
    assert ev.advance(at("2026-11-24 11:00")) == []                  # reported once
    signals = feed(ev, [("2026-11-24 12:00", "2026-11-24 13:00", 1)])
    assert [(s.kind, s.at) for s in signals] == [(SignalKind.GAP_ENDED, at("2026-11-24 12:00"))]
    tracker = ev.tracker("app-1", DOWN)
    assert tracker.episodes(at("2026-11-24 13:00")) == []
    av = tracker.availability(at("2026-11-24 09:00"), at("2026-11-24 13:00"), at("2026-11-24 13:00"))
    assert (av.up, av.down, av.unknown, av.planned) == (timedelta(hours=2), timedelta(), timedelta(hours=2),
                                                        timedelta())
    assert av.ratio == 1.0


def test_a_gap_reported_by_the_clock_ends_with_the_next_sample_even_if_it_is_on_time(rules: ContractRules) -> None:
    # the caller's clock passed the threshold, then a sample stamped exactly at it arrived: the reported
    # gap must end, or its ticket stays open while data flows
    ev = business(rules)
    feed(ev, [("2026-11-24 09:00", "2026-11-24 10:00", 1)])             # last sample 09:59
    (gap,) = ev.advance(at("2026-11-24 10:02") + timedelta(seconds=30))
    assert gap.kind is SignalKind.GAP_STARTED
    signals = ev.observe(Sample("app-1", "up", 1.0, at("2026-11-24 10:02")))
    assert [(s.kind, s.at) for s in signals if s.key == DOWN] == [(SignalKind.GAP_ENDED, at("2026-11-24 10:02"))]
    assert ev.advance(at("2026-11-24 10:04")) == []
    tracker = ev.tracker("app-1", DOWN)
    av = tracker.availability(at("2026-11-24 09:00"), at("2026-11-24 10:03"), at("2026-11-24 10:03"))
    assert av.unknown == timedelta()                                   # in event time there was no gap

def test_down_then_silent_counts_only_the_seen_outage(rules: ContractRules) -> None:
    ev = business(rules)
    feed(ev, [("2026-11-24 09:00", "2026-11-24 09:30", 0), ("2026-11-24 11:00", "2026-11-24 12:00", 1)])
    tracker = ev.tracker("app-1", DOWN)
    (ep,) = tracker.episodes(at("2026-11-24 12:00"))
    assert ep.duration == timedelta(minutes=30)                       # the last bad sample vouches 1 minute
    assert ep.unknown == (ep.unknown[0],) and ep.unknown[0].duration == timedelta(minutes=90)
    assert ep.end == at("2026-11-24 11:00")
    av = tracker.availability(at("2026-11-24 09:00"), at("2026-11-24 12:00"), at("2026-11-24 12:00"))
    assert (av.up, av.down, av.unknown) == (timedelta(hours=1), timedelta(minutes=30), timedelta(minutes=90))
    assert av.ratio == pytest.approx(2 / 3)


def test_maintenance_window_raises_no_fault(rules: ContractRules) -> None:
    window = MaintenanceWindow(frozenset({"app-1"}), at("2026-11-24 12:00"), at("2026-11-24 14:00"),
                               "firmware upgrade")
    ev = business(rules, MaintenanceSchedule([window]))
    signals = feed(ev, [("2026-11-24 11:00", "2026-11-24 12:10", 1), ("2026-11-24 12:10", "2026-11-24 13:30", 0),
                        ("2026-11-24 13:30", "2026-11-24 15:00", 1)])
    assert signals == []
    tracker = ev.tracker("app-1", DOWN)
    assert tracker.episodes(at("2026-11-24 15:00")) == []
    av = tracker.availability(at("2026-11-24 11:00"), at("2026-11-24 15:00"), at("2026-11-24 15:00"))
    assert (av.up, av.down, av.planned, av.unknown) == (timedelta(hours=2), timedelta(), timedelta(hours=2),
                                                        timedelta())
    assert av.ratio == 1.0


def test_still_down_after_the_window_is_a_fault_from_its_end(rules: ContractRules) -> None:
    window = MaintenanceWindow(frozenset({"app-1"}), at("2026-11-24 12:00"), at("2026-11-24 14:00"), "swap")
    ev = business(rules, MaintenanceSchedule([window]))
    signals = feed(ev, [("2026-11-24 11:00", "2026-11-24 12:10", 1), ("2026-11-24 12:10", "2026-11-24 14:20", 0),
                        ("2026-11-24 14:20", "2026-11-24 15:00", 1)])
    assert [(s.kind, s.at) for s in signals][:1] == [(SignalKind.OPENED, at("2026-11-24 14:00"))]
    (ep,) = ev.tracker("app-1", DOWN).episodes(at("2026-11-24 15:00"))
    assert (ep.start, ep.end, ep.duration) == (at("2026-11-24 14:00"), at("2026-11-24 14:20"),
                                               timedelta(minutes=20))


def _pair(rules: ContractRules) -> Evaluator:
    return Evaluator(rules, [DeviceSpec("sw-1", Category.BUSINESS, probe_interval=MINUTE),
                             DeviceSpec("app-1", Category.BUSINESS, depends_on="sw-1", probe_interval=MINUTE)])


def test_down_while_upstream_is_down_is_affected(rules: ContractRules) -> None:
    ev = _pair(rules)
    signals: list[Signal] = []
    for t in every_minute(at("2026-11-24 09:00"), at("2026-11-24 09:30")):
        bad = 0.0 if t >= at("2026-11-24 09:05") else 1.0
        signals += ev.observe(Sample("sw-1", "up", bad, t))
        signals += ev.observe(Sample("app-1", "up", bad, t + timedelta(seconds=30)))
    opened = [s for s in signals if s.kind == SignalKind.OPENED]
    assert [(s.device, s.upstream) for s in opened] == [("sw-1", None), ("app-1", "sw-1")]
    tracker = ev.tracker("app-1", DOWN)
    ep = tracker.open_episode(at("2026-11-24 09:30"))
    assert ep is not None and ep.affected_by == "sw-1"
    assert tracker.cumulative(at("2026-11-24 09:30")).intervals == ()
    av = tracker.availability(at("2026-11-24 09:00"), at("2026-11-24 09:30"), at("2026-11-24 09:30"))
    assert av.down == timedelta(minutes=24, seconds=30)


def test_upstream_seen_down_a_little_later_still_takes_the_fault(rules: ContractRules) -> None:
    ev = _pair(rules)
    signals: list[Signal] = []
    for t in every_minute(at("2026-11-24 09:00"), at("2026-11-24 09:10")):
        signals += ev.observe(Sample("app-1", "up", 0.0 if t >= at("2026-11-24 09:05") else 1.0, t))
        signals += ev.observe(Sample("sw-1", "up", 0.0 if t >= at("2026-11-24 09:06") else 1.0,
                                     t + timedelta(seconds=10)))
    affected = [s for s in signals if s.kind == SignalKind.AFFECTED]
    assert [(s.device, s.upstream, s.at) for s in affected] == [("app-1", "sw-1", at("2026-11-24 09:05"))]


def test_out_of_order_sample_is_ignored(rules: ContractRules, caplog: pytest.LogCaptureFixture) -> None:
    ev = business(rules)
    feed(ev, [("2026-11-24 09:00", "2026-11-24 09:10", 1)])
    with caplog.at_level(logging.INFO, logger="weibao.collector.contract.episodes"):
        assert ev.observe(Sample("app-1", "up", 0.0, at("2026-11-24 09:05"))) == []
    assert "ignored sample" in caplog.text
    assert ev.tracker("app-1", DOWN).episodes(at("2026-11-24 09:10")) == []


def test_unknown_device_and_unrelated_metric_are_ignored(rules: ContractRules) -> None:
    ev = business(rules)
    assert ev.observe(Sample("nobody", "up", 0.0, at("2026-11-24 09:00"))) == []
    assert ev.observe(Sample("app-1", "cpu.util_pct", 99.0, at("2026-11-24 09:00"))) == []
