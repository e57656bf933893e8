"""Fault evaluation for a whole inventory: one ConditionTracker per device and tracked condition.

``Evaluator`` routes samples of the metric vocabulary to the trackers their device's contract category
needs (``CategoryRules.tracked``), answers "is this device's upstream down at t" for ``depends_on``, and
marks a device's open episode as affected when its upstream goes down within ``upstream_tolerance``
after it. It decides no levels and keeps no tickets: ``level_of`` and the ticket store do that.
Feed samples in timestamp order (merge the batches of all agents first); call ``advance(now)`` on a
timer so that silent agents turn into monitoring gaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from weibao.collector.contract.calendar import local
from weibao.collector.contract.episodes import (
    ConditionTracker,
    Episode,
    Signal,
    SignalKind,
    UpstreamLookup,
    observation_from_sample,
)
from weibao.collector.contract.maintenance import MaintenanceSchedule
from weibao.collector.contract.rules import Condition, ContractRules, TrackKey
from weibao.core.inventory import Category
from weibao.core.model import Sample

_REACHABILITY = (Condition.DOWN, Condition.CUT_OFF)


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """What the evaluator needs to know of a device."""

    name: str
    category: Category
    depends_on: str | None = None
    probe_interval: timedelta | None = None


def device_spec(public: Mapping[str, Any]) -> DeviceSpec:
    """The spec of a device as an agent registers it (``RegisteredDevice``, its public JSON). The probe
    interval is that of the faster of ICMP and SNMP, as the agent schedules them (defaults 10 s, 60 s)."""
    sched = public.get("schedule") or {}
    intervals: list[float] = []
    if public.get("snmp") is not None:
        intervals.append(float(sched.get("snmp_s") or 60.0))
    if public.get("icmp") is not None:
        intervals.append(float(sched.get("icmp_s") or 10.0))
    probe = timedelta(seconds=min(intervals)) if intervals else None
    return DeviceSpec(str(public["name"]), Category(public["category"]), public.get("depends_on"), probe)


class Evaluator:
    """Trackers for every device and condition of an inventory."""

    def __init__(self, rules: ContractRules, devices: Iterable[DeviceSpec], *,
                 maintenance: MaintenanceSchedule | None = None) -> None:
        self.rules = rules
        self.devices: Mapping[str, DeviceSpec] = {d.name: d for d in devices}
        self._trackers: dict[tuple[str, TrackKey], ConditionTracker] = {}
        self._by_device: dict[str, list[tuple[TrackKey, ConditionTracker]]] = {}
        schedule = maintenance or MaintenanceSchedule()
        for spec in self.devices.values():
            for key in rules.categories[spec.category].tracked():
                self._trackers[(spec.name, key)] = ConditionTracker(
                    spec.name, key, rules.evaluation, probe_interval=spec.probe_interval,
                    maintenance=schedule, upstream=self._upstream_lookup(spec))
                self._by_device.setdefault(spec.name, []).append((key, self._trackers[(spec.name, key)]))
        self._downstream: dict[str, list[str]] = {}
        for spec in self.devices.values():
            if spec.depends_on is not None:
                self._downstream.setdefault(spec.depends_on, []).append(spec.name)

    def _reachability(self, device: str) -> list[ConditionTracker]:
        return [t for key, t in self._by_device.get(device, []) if key.condition in _REACHABILITY]

    def _upstream_lookup(self, spec: DeviceSpec) -> UpstreamLookup:
        def lookup(t: datetime) -> str | None:
            if spec.depends_on is None:
                return None
            for tracker in self._reachability(spec.depends_on):
                for ep in tracker.episodes(t):
                    if ep.start <= t and (ep.end is None or t < ep.end):
                        return ep.affected_by or spec.depends_on
            return None
        return lookup

    def tracker(self, device: str, key: TrackKey) -> ConditionTracker:
        return self._trackers[(device, key)]

    def trackers(self, device: str | None = None) -> list[ConditionTracker]:
        if device is None:
            return list(self._trackers.values())
        return [t for _, t in self._by_device.get(device, [])]

    def set_maintenance(self, maintenance: MaintenanceSchedule) -> None:
        for tracker in self._trackers.values():
            tracker.set_maintenance(maintenance)

    def observe(self, sample: Sample) -> list[Signal]:
        """Feed one sample to every tracker of its device that it bears on."""
        signals: list[Signal] = []
        for key, tracker in self._by_device.get(sample.device, []):
            bad = observation_from_sample(sample, key)
            if bad is not None:
                signals += tracker.observe(sample.ts, bad)
        signals += self._attach_downstream(signals)
        return signals

    def _attach_downstream(self, signals: list[Signal]) -> list[Signal]:
        out: list[Signal] = []
        for sig in signals:
            if sig.kind not in (SignalKind.OPENED, SignalKind.REOPENED) or sig.key.condition not in _REACHABILITY:
                continue
            root = sig.upstream or sig.device
            since = sig.at - self.rules.evaluation.upstream_tolerance
            for name in self._downstream.get(sig.device, []):
                for tracker in self._reachability(name):
                    out += tracker.mark_affected(root, since)
        return out

    def advance(self, now: datetime) -> list[Signal]:
        """Let time pass: monitoring gaps that became overdue."""
        now = local(now)
        return [s for t in self._trackers.values() for s in t.advance(now)]

    def prune(self, before: datetime) -> None:
        """Forget what ended before ``before`` (bounded memory). The per-month rows need the whole
        current month: pass the start of the previous calendar month or earlier."""
        for tracker in self._trackers.values():
            tracker.prune(before)

    def open_episodes(self, now: datetime) -> list[Episode]:
        return [ep for t in self._trackers.values() if (ep := t.open_episode(now)) is not None]
