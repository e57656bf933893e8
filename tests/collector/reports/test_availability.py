"""Availability classification: the samples handed to the contract core's classifier are a subset that gives
the very timeline all samples give (random histories with outages, gaps, jitter and maintenance windows),
and the working-time split, worked by hand."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from tests.collector.scenarios.replay import at
from weibao.collector.contract import DeviceSpec, MaintenanceSchedule, MaintenanceWindow, load_calendar
from weibao.collector.contract.episodes import ConditionTracker, TimeState
from weibao.collector.contract.intervals import Interval, merge
from weibao.collector.contract.rules import Condition, EvaluationSettings, TrackKey
from weibao.collector.reports.availability import classify, intersect
from weibao.collector.reports.source import DeviceInfo, UpSamples, ms
from weibao.core.inventory import Category

SETTINGS = EvaluationSettings()
START, END = at("2026-10-12 00:00"), at("2026-10-19 00:00")


def device(probe_s: int) -> DeviceInfo:
    return DeviceInfo("d1", "switch", "business", DeviceSpec("d1", Category.BUSINESS, None,
                                                              timedelta(seconds=probe_s)), True)


def history(rnd: random.Random, probe_s: int) -> UpSamples:
    out, t = UpSamples(), START - timedelta(minutes=10)
    state = 1.0
    while t < END:
        if rnd.random() < 0.02:
            state = 1.0 - state
        if rnd.random() < 0.005:
            t += timedelta(seconds=rnd.randint(probe_s * 3, probe_s * 40))  # a monitoring gap
            continue
        out.add(ms(t), state)
        t += timedelta(seconds=probe_s + rnd.randint(-probe_s // 5, probe_s // 5))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_the_timeline_is_the_one_every_sample_gives(seed: int) -> None:
    rnd = random.Random(seed)
    probe = rnd.choice((20, 60, 300))
    samples = history(rnd, probe)
    windows = MaintenanceSchedule([MaintenanceWindow(frozenset({"d1"}), at("2026-10-14 01:00"),
                                                     at("2026-10-14 03:17"), "upgrade")])
    full = ConditionTracker("d1", TrackKey(Condition.DOWN), SETTINGS, probe_interval=timedelta(seconds=probe),
                            maintenance=windows)
    for ts, value in zip(samples.ts, samples.values, strict=True):
        full.observe(datetime.fromtimestamp(ts / 1000, START.tzinfo), value < 1)
    want_down = [iv.clip(START, END) for iv, st in full.timeline(END) if st is TimeState.DOWN]
    want_known = [iv.clip(START, END) for iv, st in full.timeline(END) if st in (TimeState.UP, TimeState.DOWN)]
    got = classify(device(probe), samples, SETTINGS, windows, START, END)
    assert got.down == merge(iv for iv in want_down if iv is not None)
    assert got.known == merge(iv for iv in want_known if iv is not None)


def test_working_time_of_a_week_with_a_make_up_saturday() -> None:
    cal = load_calendar()
    start, end = at("2026-10-05 00:00"), at("2026-10-12 00:00")
    working = cal.working_intervals(start, end)
    # holidays 10-05..07; working 10-08, 10-09 and the make-up Saturday 10-10, 08:30-17:30 each
    assert sum((iv.end - iv.start).total_seconds() for iv in working) == 3 * 9 * 3600
    down = [Interval(at("2026-10-10 08:00"), at("2026-10-10 09:00")),
            Interval(at("2026-10-10 17:00"), at("2026-10-11 10:00"))]
    # 08:30-09:00 and 17:00-17:30 of the make-up day
    assert sum((iv.end - iv.start).total_seconds() for iv in intersect(down, working)) == 1800 + 1800
