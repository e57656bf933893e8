"""Fault episodes of one device and condition, tracked in event time from good/bad observations.

How time is classified (each sample's state holds until the next sample):

- A sample vouches for the time until the next sample. If no sample comes for more than
  ``gap_after_missed_probes`` x the probe interval, the last sample vouches for one probe interval only
  and the rest, up to the next sample, is **unknown**: no data is not down. It counts neither as outage
  nor as availability, and ``advance(now)`` reports a monitoring gap as soon as it is overdue.
- Time inside a maintenance window is **planned**, whatever the samples say: a bad sample in a window
  opens no fault, and planned time is left out of availability. A device still down when its window ends
  has a fault from the window's end.
- A fault episode opens at its first bad moment. It is restored (``end``) at the first of
  ``clear_after_good_samples`` consecutive good samples that also span at least ``hold_down``; good
  samples followed by a bad one before that do not end it (hysteresis), and only the bad time counts as
  down time. A fault that returns within ``reopen_window`` after its restoration re-opens the same
  episode (same id, ``reopen_count`` + 1) instead of opening a new one.
- An episode is **affected by upstream X** when the device's ``depends_on`` upstream was down when it
  started (or went down at most ``upstream_tolerance`` later): the caller attaches it to X's ticket (the
  ticket of X's episode ``affected_episode``), and its time is not counted in the device's own per-day /
  per-month cumulative durations until it outlasts X's outage (``owned_from``: the moment X was back while
  this device stayed down), from which it is a fault of its own.
- ``loss_or_latency`` is one condition of two metrics: at each burst (one timestamp) it is bad when either
  the loss or the latency of that burst (or the latest one seen of either) is at or above its threshold. A
  burst's state is taken once all its samples are in: when the device's next burst begins.

Samples must arrive in timestamp order per device and condition; an older sample is ignored (and
logged), since event time is only replayable if the order is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from weibao.collector.contract.calendar import WorkingCalendar, local
from weibao.collector.contract.intervals import Interval, clip_all, merge, subtract, total
from weibao.collector.contract.maintenance import MaintenanceSchedule
from weibao.collector.contract.rules import Condition, EvaluationSettings, TrackKey
from weibao.core.model import Sample

log = logging.getLogger(__name__)

_METRIC = {Condition.DOWN: "up", Condition.CUT_OFF: "up", Condition.LOSS: "icmp.loss_pct",
           Condition.LATENCY: "icmp.rtt_ms"}
_LOSS, _RTT = "icmp.loss_pct", "icmp.rtt_ms"


class TimeState(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"
    PLANNED = "planned"


class SignalKind(StrEnum):
    OPENED = "opened"
    REOPENED = "reopened"
    RESTORED = "restored"
    AFFECTED = "affected"          # an open episode turned out to be caused by its upstream
    GAP_STARTED = "gap_started"
    GAP_ENDED = "gap_ended"


def observation_from_sample(sample: Sample, key: TrackKey) -> bool | None:
    """Whether ``sample`` says the condition is bad (True), good (False), or does not bear on it (None).
    For ``loss_or_latency``: what this one sample says of its own metric (the tracker combines the two)."""
    if math.isnan(sample.value):
        return None
    if key.condition is Condition.LOSS_OR_LATENCY:
        if sample.metric == _LOSS:
            assert key.threshold is not None
            return sample.value >= key.threshold
        if sample.metric == _RTT:
            assert key.latency is not None
            return sample.value >= key.latency
        return None
    if sample.metric != _METRIC[key.condition]:
        return None
    if key.condition in (Condition.DOWN, Condition.CUT_OFF):
        return sample.value < 1
    assert key.threshold is not None
    return sample.value >= key.threshold


@dataclass(frozen=True, slots=True)
class Episode:
    """One fault episode as of ``as_of``: its down time, unknown time, and restoration (``end``)."""

    id: str
    device: str
    key: TrackKey
    start: datetime
    end: datetime | None
    down: tuple[Interval, ...]
    unknown: tuple[Interval, ...]
    affected_by: str | None
    reopen_count: int
    as_of: datetime
    affected_episode: str | None = None  # the id of the upstream root's episode it belongs to
    restorations: tuple[datetime, ...] = ()  # every restoration, kept when a re-open undoes one

    @property
    def is_open(self) -> bool:
        return self.end is None

    @property
    def duration(self) -> timedelta:
        """Down time of the episode (unknown and planned time excluded)."""
        return total(self.down)

    def split(self, calendar: WorkingCalendar) -> tuple[float, float]:
        """(working, non-working) seconds of the episode's down time."""
        w = n = 0.0
        for iv in self.down:
            a, b = calendar.split(iv.start, iv.end)
            w, n = w + a, n + b
        return w, n

    def working_share(self, calendar: WorkingCalendar) -> float:
        w, n = self.split(calendar)
        return w / (w + n) if w + n else 0.0


@dataclass(frozen=True, slots=True)
class Cumulative:
    """A device's own down time for one condition (affected episodes excluded), merged and ordered."""

    device: str
    key: TrackKey
    intervals: tuple[Interval, ...]

    def between(self, a: datetime, b: datetime) -> list[Interval]:
        return clip_all(self.intervals, a, b)


@dataclass(frozen=True, slots=True)
class Availability:
    """Time of one device and condition in [start, end): availability = up / (up + down)."""

    start: datetime
    end: datetime
    up: timedelta
    down: timedelta
    unknown: timedelta
    planned: timedelta

    @property
    def ratio(self) -> float | None:
        """up / (period - unknown - planned); None when no time of the period is known."""
        known = self.up + self.down
        return self.up / known if known > timedelta() else None


@dataclass(frozen=True, slots=True)
class Signal:
    """Something the caller acts on. ``at`` is the event time it refers to: for RESTORED the first good
    sample (the restoration time), known only once the hysteresis is satisfied; for AFFECTED and OPENED,
    ``upstream`` names the device whose ticket the episode belongs to."""
    kind: SignalKind
    device: str
    key: TrackKey
    at: datetime
    episode: Episode | None = None
    upstream: str | None = None


@dataclass
class _Ep:
    id: str
    start: datetime
    end: datetime | None = None
    down: list[Interval] = field(default_factory=list)
    unknown: list[Interval] = field(default_factory=list)
    affected_by: str | None = None
    affected_episode: str | None = None
    reopen_count: int = 0
    restorations: list[datetime] = field(default_factory=list)
    reopens: list[datetime] = field(default_factory=list)

    def in_fault(self, t: datetime) -> bool:
        """Whether the episode is a fault at ``t``: started, and not restored then (or re-opened since)."""
        if t < self.start:
            return False
        last = max([r for r in self.restorations if r <= t], default=None)
        if last is None:
            return True
        return any(last < f <= t for f in self.reopens)


# (device, episode id) of the root whose outage an episode starting at this time belongs to, or None
UpstreamLookup = Callable[[datetime], tuple[str, str] | None]
# the moment an affected episode became a fault of its own (its upstream back while it stayed down), or None
OwnedFrom = Callable[["_Ep", "ConditionTracker"], datetime | None]


class ConditionTracker:
    """Follows one (device, condition) in event time; see the module docstring for the semantics."""

    def __init__(self, device: str, key: TrackKey, settings: EvaluationSettings, *,
                 probe_interval: timedelta | None = None, maintenance: MaintenanceSchedule | None = None,
                 upstream: UpstreamLookup | None = None, owned_from: OwnedFrom | None = None) -> None:
        self.device = device
        self.key = key
        self.settings = settings
        self.probe_interval = probe_interval or settings.default_probe_interval
        self.gap_threshold = self.probe_interval * settings.gap_after_missed_probes
        self._windows = (maintenance or MaintenanceSchedule()).for_device(device)
        self._upstream = upstream
        self._owned_from = owned_from
        self._last: tuple[datetime, bool] | None = None
        # loss_or_latency: each metric's latest state, and the burst not yet taken (its time, its states)
        self._states: dict[str, bool] = {}
        self._burst: datetime | None = None
        self._segments: list[tuple[Interval, TimeState]] = []
        self._episodes: list[_Ep] = []
        self._open: _Ep | None = None
        self._good_run: list[datetime] = []
        self._gap_signalled = False

    # --- feeding ---------------------------------------------------------------------------------

    @property
    def pending_good_since(self) -> datetime | None:
        """The first good sample of a run that may yet restore the open episode (not confirmed yet): whether
        the episode was still a fault from then on is not known yet."""
        return self._good_run[0] if self._open is not None and self._good_run else None

    @property
    def in_fault(self) -> bool:
        """Whether an episode is open (a bad sample now continues it rather than begins one)."""
        return self._open is not None

    @property
    def last_ts(self) -> datetime | None:
        """The time of the newest sample taken: the classification of time is final up to here."""
        return self._last[0] if self._last is not None else None

    def observe_sample(self, sample: Sample) -> list[Signal]:
        """Feed one sample of the metric vocabulary; a sample that does not bear on the condition is ignored."""
        bad = observation_from_sample(sample, self.key)
        if bad is None:
            return []
        if self.key.condition is not Condition.LOSS_OR_LATENCY:
            return self.observe(sample.ts, bad)
        ts = local(sample.ts)
        signals: list[Signal] = []
        if self._burst is not None and ts > self._burst:
            signals = self.flush()
        if self._burst is None or ts >= self._burst:
            self._states[sample.metric] = bad
            self._burst = ts
        return signals

    @property
    def pending_burst(self) -> datetime | None:
        """The time of a loss-or-latency burst not yet taken (it waits for the next burst)."""
        return self._burst

    def flush(self) -> list[Signal]:
        """Take the pending burst of a ``loss_or_latency`` condition (either metric bad: bad)."""
        if self._burst is None:
            return []
        ts, self._burst = self._burst, None
        return self.observe(ts, any(self._states.values()))

    def set_maintenance(self, maintenance: MaintenanceSchedule) -> None:
        """Replace the windows; applies to time not yet classified (from the last sample on)."""
        self._windows = maintenance.for_device(self.device)

    def observe(self, ts: datetime, bad: bool) -> list[Signal]:
        """Feed one observation (True: the condition is bad at ``ts``)."""
        ts = local(ts)
        signals: list[Signal] = []
        if self._last is not None:
            if ts <= self._last[0]:
                log.info("%s %s: ignored sample at %s, not after the last one (%s)", self.device,
                         self.key.condition, ts.isoformat(), self._last[0].isoformat())
                return signals
            for iv, state in self._classify(self._last[0], self._last[1], ts):
                signals += self._record(iv, state)
            gap = ts - self._last[0] > self.gap_threshold
            if gap and not self._gap_signalled:
                gap_start = self._last[0] + self.probe_interval
                signals.append(Signal(SignalKind.GAP_STARTED, self.device, self.key, gap_start))
            # ``advance`` judges silence by the caller's clock, not by event time: a sample stamped within
            # the threshold can still arrive after the gap was reported (late, or stamped to the second).
            # The reported gap ends with it all the same, or its ticket would wait forever.
            if gap or self._gap_signalled:
                signals.append(Signal(SignalKind.GAP_ENDED, self.device, self.key, ts))
        self._gap_signalled = False
        self._last = (ts, bad)
        planned = any(w.contains(ts) for w in self._windows)
        if bad:
            self._good_run.clear()
            if not planned:
                signals += self._ensure_open(ts)
        elif self._open is not None:
            self._good_run.append(ts)
            first = self._good_run[0]
            if (len(self._good_run) >= self.settings.clear_after_good_samples
                    and ts - first >= self.settings.hold_down):
                self._open.end = first
                self._open.restorations.append(first)
                ep = self._open
                self._open = None
                self._good_run.clear()
                signals.append(Signal(SignalKind.RESTORED, self.device, self.key, first, self._snap(ep, ts)))
        return signals

    def advance(self, now: datetime) -> list[Signal]:
        """Let time pass without a sample: reports a monitoring gap once one is overdue (once per gap)."""
        now = local(now)
        if self._last is None or self._gap_signalled or now - self._last[0] <= self.gap_threshold:
            return []
        self._gap_signalled = True
        return [Signal(SignalKind.GAP_STARTED, self.device, self.key, self._last[0] + self.probe_interval)]

    def mark_affected(self, upstream: str, since: datetime, episode: str | None = None) -> list[Signal]:
        """Mark the open episode as caused by ``upstream`` (its episode ``episode``) if it started at or after
        ``since``."""
        ep = self._open
        if ep is None or ep.affected_by is not None or ep.start < since:
            return []
        ep.affected_by, ep.affected_episode = upstream, episode
        now = self._last[0] if self._last else ep.start
        return [Signal(SignalKind.AFFECTED, self.device, self.key, ep.start, self._snap(ep, now), upstream)]

    def prune(self, before: datetime) -> None:
        """Forget closed episodes and classified time that ended before ``before`` (bounded memory)."""
        self._episodes = [e for e in self._episodes if e is self._open or e.end is None
                          or e.end + self.settings.reopen_window >= before]
        self._segments = [(iv, s) for iv, s in self._segments if iv.end >= before]

    # --- internals -------------------------------------------------------------------------------

    def _classify(self, a: datetime, bad: bool, b: datetime) -> list[tuple[Interval, TimeState]]:
        """The time [a, b) after a sample of state ``bad`` at ``a``, split into states."""
        state = TimeState.DOWN if bad else TimeState.UP
        if b - a > self.gap_threshold:
            held = min(a + self.probe_interval, b)
            pieces = [(Interval(a, held), state), (Interval(held, b), TimeState.UNKNOWN)]
        else:
            pieces = [(Interval(a, b), state)]
        out: list[tuple[Interval, TimeState]] = []
        for iv, st in pieces:
            if iv.end <= iv.start:
                continue
            out += [(p, st) for p in subtract([iv], self._windows)]
            out += [(p, TimeState.PLANNED) for p in clip_all(self._windows, iv.start, iv.end)]
        return sorted(out, key=lambda x: x[0].start)

    def _record(self, iv: Interval, state: TimeState) -> list[Signal]:
        signals: list[Signal] = []
        if self._segments and self._segments[-1][1] == state and self._segments[-1][0].end == iv.start:
            self._segments[-1] = (Interval(self._segments[-1][0].start, iv.end), state)
        else:
            self._segments.append((iv, state))
        if state == TimeState.DOWN:
            signals += self._ensure_open(iv.start)
            assert self._open is not None
            self._open.down.append(iv)
        elif state == TimeState.UNKNOWN and self._open is not None:
            self._open.unknown.append(iv)
        return signals

    def _ensure_open(self, t: datetime) -> list[Signal]:
        if self._open is not None:
            return []
        last = self._episodes[-1] if self._episodes else None
        if last is not None and last.end is not None and t - last.end <= self.settings.reopen_window:
            last.end = None
            last.reopen_count += 1
            last.reopens.append(t)
            self._open = last
            return [Signal(SignalKind.REOPENED, self.device, self.key, t, self._snap(last, t))]
        suffix = self.key.suffix
        ep = _Ep(id=f"{self.device}/{self.key.condition.value}{suffix}/{t.isoformat()}", start=t)
        if self._upstream is not None and self.key.condition in (Condition.DOWN, Condition.CUT_OFF):
            root = self._upstream(t)
            if root is not None:
                ep.affected_by, ep.affected_episode = root
        self._episodes.append(ep)
        self._open = ep
        return [Signal(SignalKind.OPENED, self.device, self.key, t, self._snap(ep, t), ep.affected_by)]

    def _tail(self, now: datetime) -> list[tuple[Interval, TimeState]]:
        if self._last is None or now <= self._last[0]:
            return []
        return self._classify(self._last[0], self._last[1], now)

    def _snap(self, ep: _Ep, now: datetime) -> Episode:
        down, unknown = list(ep.down), list(ep.unknown)
        if ep is self._open:
            for iv, state in self._tail(now):
                if state == TimeState.DOWN:
                    down.append(iv)
                elif state == TimeState.UNKNOWN:
                    unknown.append(iv)
        return Episode(id=ep.id, device=self.device, key=self.key, start=ep.start, end=ep.end,
                       down=tuple(merge(down)), unknown=tuple(merge(unknown)), affected_by=ep.affected_by,
                       reopen_count=ep.reopen_count, as_of=now, affected_episode=ep.affected_episode,
                       restorations=tuple(ep.restorations))

    # --- reading ---------------------------------------------------------------------------------

    def open_episode(self, now: datetime) -> Episode | None:
        """The episode not yet restored, with its down time up to ``now``."""
        return self._snap(self._open, local(now)) if self._open is not None else None

    def episodes(self, now: datetime) -> list[Episode]:
        """Every remembered episode (oldest first), as of ``now``."""
        now = local(now)
        return [self._snap(e, now) for e in self._episodes]

    def cumulative(self, now: datetime) -> Cumulative:
        """The device's own down time up to ``now``: an episode affected by an upstream counts only from the
        moment it became a fault of its own (its upstream back while it stayed down)."""
        now = local(now)
        down: list[Interval] = []
        for raw in self._episodes:
            ep = self._snap(raw, now)
            if ep.affected_by is None:
                down.extend(ep.down)
            elif self._owned_from is not None:
                own = self._owned_from(raw, self)
                if own is not None:
                    down.extend(clip_all(ep.down, own, now))
        return Cumulative(self.device, self.key, tuple(merge(down)))

    # --- lookups for the devices that depend on this one ------------------------------------------

    def first_down(self, a: datetime, b: datetime) -> tuple[datetime, _Ep] | None:
        """The first moment in [a, b] this device is known down, with its episode; None if not known down.

        Known: what the samples taken so far say; a bad newest sample holds until the next one."""
        a, b = local(a), local(b)
        found: tuple[datetime, _Ep] | None = None
        for ep in reversed(self._episodes):
            if ep.end is not None and ep.end <= a:
                break
            for iv in ep.down:
                if iv.end > a and iv.start <= b:
                    t = max(iv.start, a)
                    if found is None or t < found[0]:
                        found = (t, ep)
                    break
            # the newest sample is bad: down from it on, until a sample says otherwise
            last = self._last
            if ep is self._open and last is not None and last[1] and last[0] <= b:
                t = max(last[0], a)
                if found is None or t < found[0]:
                    found = (t, ep)
        return found

    def episode(self, episode_id: str, now: datetime) -> Episode | None:
        """The remembered episode ``episode_id`` as of ``now``."""
        raw = self.raw_episode(episode_id)
        return self._snap(raw, local(now)) if raw is not None else None

    def raw_episode(self, episode_id: str) -> _Ep | None:
        for ep in reversed(self._episodes):
            if ep.id == episode_id:
                return ep
        return None

    def timeline(self, now: datetime) -> list[tuple[Interval, TimeState]]:
        """Classified time from the first sample up to ``now``."""
        return [*self._segments, *self._tail(local(now))]

    def availability(self, start: datetime, end: datetime, now: datetime) -> Availability:
        """Up, down, unknown and planned time in [start, min(end, now)); time before the first sample is
        unknown. Down time includes time affected by an upstream (the service was not available)."""
        start, end = local(start), min(local(end), local(now))
        sums = {s: timedelta() for s in TimeState}
        for iv, state in self.timeline(now):
            part = iv.clip(start, end)
            if part is not None:
                sums[state] += part.duration
        if end > start:
            sums[TimeState.UNKNOWN] = (end - start) - sums[TimeState.UP] - sums[TimeState.DOWN] \
                - sums[TimeState.PLANNED]
        return Availability(start, max(start, end), sums[TimeState.UP], sums[TimeState.DOWN],
                            sums[TimeState.UNKNOWN], sums[TimeState.PLANNED])

