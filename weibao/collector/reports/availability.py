"""Availability per device, per category and overall, from ``up``, classified by the contract core.

For a period [start, end) in contract time (Asia/Shanghai), per device:

- ``planned_s``: time inside the device's maintenance windows;
- ``unknown_s``: time without data (monitoring gaps, before the first sample, after the last) outside
  planned time;
- ``down_s``: time down outside both;
- ``availability_pct = 100 * (1 - down_s / (period_s - planned_s - unknown_s))``, None when the
  denominator is 0.

The same figures counted inside working time only (``*_working_s``) give ``availability_working_pct``.
Unknown time is never counted as up or as down. The time itself is classified by the contract core's
``ConditionTracker`` (a sample vouches for the time until the next one, a silence longer than the gap
threshold is unknown, maintenance windows are planned), fed with the period's ``up`` samples.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

from weibao.collector.contract.calendar import WorkingCalendar
from weibao.collector.contract.episodes import ConditionTracker, TimeState
from weibao.collector.contract.intervals import Interval, clip_all, merge
from weibao.collector.contract.maintenance import MaintenanceSchedule
from weibao.collector.contract.rules import Condition, EvaluationSettings, TrackKey
from weibao.collector.reports.source import DeviceInfo, UpSamples, ms
from weibao.core.timeutil import SHANGHAI

_DOWN = TrackKey(Condition.DOWN)


def _seconds(ivs: Iterable[Interval]) -> float:
    return sum((iv.end - iv.start).total_seconds() for iv in ivs)


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """The intersection of two sorted unions of intervals."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i].start, b[j].start), min(a[i].end, b[j].end)
        if hi > lo:
            out.append(Interval(lo, hi))
        if a[i].end <= b[j].end:
            i += 1
        else:
            j += 1
    return out


@dataclass
class Figures:
    """The availability figures of one device, one category or everything (sums of device seconds)."""

    period_s: float = 0.0
    planned_s: float = 0.0
    unknown_s: float = 0.0
    down_s: float = 0.0
    period_working_s: float = 0.0
    planned_working_s: float = 0.0
    unknown_working_s: float = 0.0
    down_working_s: float = 0.0

    def add(self, other: Figures) -> None:
        for name in _FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @staticmethod
    def pct(period: float, planned: float, unknown: float, down: float) -> float | None:
        known = period - planned - unknown
        # sub-millisecond remainders are rounding, not known time
        if known <= 1e-6:
            return None
        return 100.0 * (1.0 - down / known)

    @property
    def availability_pct(self) -> float | None:
        return self.pct(self.period_s, self.planned_s, self.unknown_s, self.down_s)

    @property
    def availability_working_pct(self) -> float | None:
        return self.pct(self.period_working_s, self.planned_working_s, self.unknown_working_s,
                        self.down_working_s)

    def as_json(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {name: round(getattr(self, name), 3) for name in _FIELDS}
        out["up_s"] = round(self.period_s - self.planned_s - self.unknown_s - self.down_s, 3)
        out["down_non_working_s"] = round(self.down_s - self.down_working_s, 3)
        a, w = self.availability_pct, self.availability_working_pct
        out["availability_pct"] = None if a is None else round(a, 6)
        out["availability_working_pct"] = None if w is None else round(w, 6)
        return out


_FIELDS = ("period_s", "planned_s", "unknown_s", "down_s", "period_working_s", "planned_working_s",
           "unknown_working_s", "down_working_s")


@dataclass
class DeviceTime:
    """One device's classified time over the period: sorted, merged intervals per state."""

    device: DeviceInfo
    down: list[Interval] = field(default_factory=list)
    planned: list[Interval] = field(default_factory=list)
    known: list[Interval] = field(default_factory=list)  # up or down
    samples: int = 0

    def unknown(self, start: datetime, end: datetime) -> list[Interval]:
        """Time of [start, end) that is neither known nor planned."""
        covered = merge([*self.known, *self.planned])
        out, t = [], start
        for iv in clip_all(covered, start, end):
            if iv.start > t:
                out.append(Interval(t, iv.start))
            t = max(t, iv.end)
        if t < end:
            out.append(Interval(t, end))
        return out

    def figures(self, start: datetime, end: datetime, working: Sequence[Interval]) -> Figures:
        """The figures of the part [start, end) of the period; ``working``: its working time."""
        down = clip_all(self.down, start, end)
        planned = clip_all(self.planned, start, end)
        unknown = self.unknown(start, end)
        return Figures(
            period_s=(end - start).total_seconds(), planned_s=_seconds(planned), unknown_s=_seconds(unknown),
            down_s=_seconds(down), period_working_s=_seconds(working),
            planned_working_s=_seconds(intersect(planned, working)),
            unknown_working_s=_seconds(intersect(unknown, working)),
            down_working_s=_seconds(intersect(down, working)))


def telling(samples: UpSamples, threshold: timedelta) -> Iterator[tuple[datetime, bool]]:
    """The observations that shape the timeline: the samples on both sides of every change of state and of
    every silence longer than ``threshold``, and inside each steady stretch enough samples that no two
    kept ones are further apart than ``threshold``. The classifier judges each pair of consecutive
    samples alone (the earlier one's state holds until the later, or the pair is a gap), so the samples
    left out would only have cut a steady stretch into more pieces of the same state."""
    if not samples:
        return
    limit = threshold // timedelta(milliseconds=1)
    ts = samples.ts
    bad = [v < 1 for v in samples.values]
    # where a stretch begins: the first sample, and each one after a change of state or a silence
    starts = [0, *(k for k, (a, b, x, y) in enumerate(zip(ts, ts[1:], bad, bad[1:], strict=False), 1)
                   if y != x or b - a > limit), len(ts)]
    for i, after in pairwise(starts):
        j = after - 1
        cur = i
        yield datetime.fromtimestamp(ts[i] / 1000, SHANGHAI), bad[i]
        while ts[j] - ts[cur] > limit:
            cur = bisect_right(ts, ts[cur] + limit, cur + 1, j + 1) - 1
            yield datetime.fromtimestamp(ts[cur] / 1000, SHANGHAI), bad[cur]
        if cur != j:
            yield datetime.fromtimestamp(ts[j] / 1000, SHANGHAI), bad[j]


def classify(device: DeviceInfo, samples: UpSamples, settings: EvaluationSettings,
             maintenance: MaintenanceSchedule, start: datetime, end: datetime) -> DeviceTime:
    """The device's time over [start, end) as the contract core classifies it from its ``up`` samples
    (``samples`` may begin before ``start``: the sample before the period tells its state at the start)."""
    tracker = ConditionTracker(device.spec.name, _DOWN, settings, probe_interval=device.spec.probe_interval,
                               maintenance=maintenance)
    observe = tracker.observe
    for ts, bad in telling(samples, tracker.gap_threshold):
        observe(ts, bad)
    down: list[Interval] = []
    known: list[Interval] = []
    for iv, state in tracker.timeline(end):
        part = iv.clip(start, end)
        if part is None:
            continue
        if state is TimeState.DOWN:
            down.append(part)
            known.append(part)
        elif state is TimeState.UP:
            known.append(part)
    planned = clip_all(maintenance.for_device(device.name), start, end)
    in_period = samples.count_between(ms(start), ms(end))
    return DeviceTime(device, merge(down), planned, merge(known), in_period)


def lookback(settings: EvaluationSettings, devices: Iterable[DeviceInfo]) -> timedelta:
    """How far before a period its samples are read: the longest gap threshold of the devices."""
    probes = [d.spec.probe_interval or settings.default_probe_interval for d in devices]
    return max(probes, default=settings.default_probe_interval) * settings.gap_after_missed_probes


def working_time(calendar: WorkingCalendar, start: datetime, end: datetime) -> list[Interval]:
    return calendar.working_intervals(start, end)
