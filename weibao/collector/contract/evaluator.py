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
    _Ep,
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
        self.devices: Mapping[str, DeviceSpec] = {}
        self._trackers: dict[tuple[str, TrackKey], ConditionTracker] = {}
        self._by_device: dict[str, list[tuple[TrackKey, ConditionTracker]]] = {}
        self._downstream: dict[str, list[str]] = {}
        self._maintenance = maintenance or MaintenanceSchedule()
        self.update(devices)

    def update(self, devices: Iterable[DeviceSpec]) -> set[str]:
        """Take a new list of devices, keeping what is known of those whose spec did not change: a device
        no longer listed is forgotten, a new one or one whose spec changed starts with empty trackers.
        Returns the devices that were known before and start anew (their history must be fed again)."""
        specs = {d.name: d for d in devices}
        renewed: set[str] = set()
        for name, old in self.devices.items():
            if specs.get(name) == old:
                continue
            if name in specs:
                renewed.add(name)
            for key, _ in self._by_device.pop(name, []):
                del self._trackers[(name, key)]
        for spec in specs.values():
            if spec.name in self._by_device:
                continue
            for key in self.rules.categories[spec.category].tracked():
                tracker = ConditionTracker(
                    spec.name, key, self.rules.evaluation, probe_interval=spec.probe_interval,
                    maintenance=self._maintenance, upstream=self._upstream_lookup(spec), owned_from=self._owned_from)
                self._trackers[(spec.name, key)] = tracker
                self._by_device.setdefault(spec.name, []).append((key, tracker))
        self.devices = specs
        self._downstream = {}
        for spec in specs.values():
            if spec.depends_on is not None:
                self._downstream.setdefault(spec.depends_on, []).append(spec.name)
        return renewed

    def _reachability(self, device: str) -> list[ConditionTracker]:
        return [t for key, t in self._by_device.get(device, []) if key.condition in _REACHABILITY]

    def _upstream_lookup(self, spec: DeviceSpec) -> UpstreamLookup:
        def lookup(t: datetime) -> tuple[str, str] | None:
            return self.root_at(spec.depends_on, t) if spec.depends_on is not None else None
        return lookup

    def root_at(self, upstream: str, t: datetime, until: datetime | None = None) -> tuple[str, str] | None:
        """The (device, episode id) whose fault a dependent of ``upstream`` going down at ``t`` belongs to:
        ``upstream`` is known down at some moment of [t, ``until``] (default t + upstream_tolerance), and the
        owner of that episode at that moment (up the chain of upstreams); None when it is not known down."""
        end = until if until is not None else t + self.rules.evaluation.upstream_tolerance
        for tracker in self._reachability(upstream):
            found = tracker.first_down(t, end)
            if found is not None:
                when, ep = found
                return self._owner(upstream, tracker, ep, when)
        return None

    def _owner(self, device: str, tracker: ConditionTracker, ep: _Ep, t: datetime) -> tuple[str, str]:
        """Whose fault ``ep`` of ``device`` is at ``t``: the last owner of its ownership up to ``t``."""
        owner = (device, ep.id)
        for since, who, episode in self.ownership(tracker, ep):
            if since <= t:
                owner = (who, episode)
        return owner

    def ownership(self, tracker: ConditionTracker, ep: _Ep) -> list[tuple[datetime, str, str]]:
        """Whose fault the episode is, over time, as far as it is known: [(from, device, episode id)].

        An episode that began affected by an upstream belongs to that upstream's root; from the first moment
        it is still a fault while its owner's episode is not (the upstream was back), it belongs to whoever
        its upstream's chain says then, or to itself. Known only as far as both devices' samples reach.
        """
        if ep.affected_episode is None or ep.affected_by is None:
            return [(ep.start, tracker.device, ep.id)]
        out = [(ep.start, ep.affected_by, ep.affected_episode)]
        spec = self.devices.get(tracker.device)
        for _ in range(8):  # a few hand-overs at most; a chain longer than this keeps its last owner
            since, who, episode = out[-1]
            if who == tracker.device:
                break
            owner_ep = self._find(who, episode)
            if owner_ep is None:
                break
            owner_tracker = owner_ep[0]
            moments = sorted({*owner_ep[1].restorations, *ep.reopens})
            change = next((c for c in moments if c >= since and ep.in_fault(c) and not owner_ep[1].in_fault(c)),
                          None)
            if change is None:
                break
            known = min(tracker.last_ts or change, owner_tracker.last_ts or change)
            pending = tracker.pending_good_since
            if known < change or (pending is not None and pending <= change):
                break  # its own state at ``change`` is not known yet (a restoration may be confirmed)
            upstream = spec.depends_on if spec is not None else None
            if upstream is not None and upstream in self.devices and not self.covered(upstream, change):
                break  # whose fault it is from ``change`` is not known yet
            root = self.root_at(upstream, change) if upstream is not None else None
            if root is not None and root[1] == episode:
                break  # the same owner: its episode is in fault after all (re-opened)
            out.append((change, *(root or (tracker.device, ep.id))))
        return out

    def _find(self, device: str, episode_id: str) -> tuple[ConditionTracker, _Ep] | None:
        for tracker in self._reachability(device):
            found = tracker.raw_episode(episode_id)
            if found is not None:
                return tracker, found
        return None

    def _owned_from(self, ep: _Ep, tracker: ConditionTracker) -> datetime | None:
        """The moment ``ep`` became a fault of its own device (counted in its own durations from then)."""
        for since, who, _ in self.ownership(tracker, ep):
            if who == tracker.device:
                return since
        return None

    def begins(self, sample: Sample) -> bool:
        """Whether ``sample`` would begin a reachability fault of its device: the one moment the device's
        upstream is asked about (``root_at``)."""
        for tracker in self._reachability(sample.device):
            bad = observation_from_sample(sample, tracker.key)
            if bad and not tracker.in_fault:
                return True
        return False

    def covered(self, upstream: str, t: datetime) -> bool:
        """Whether ``upstream``'s samples tell whose fault a dependent going down at ``t`` is: they reach
        ``t`` + upstream_tolerance, or the upstream is known down at ``t`` already."""
        newest = self.as_of(upstream)
        if newest is None:
            return False
        return newest >= t + self.rules.evaluation.upstream_tolerance or (
            newest >= t and self.root_at(upstream, t, t) is not None)

    def upstream_chain(self, device: str) -> list[str]:
        """The device's upstreams, nearest first (a cycle stops where it closes)."""
        out: list[str] = []
        up = self.devices[device].depends_on if device in self.devices else None
        while up is not None and up in self.devices and up not in out and up != device:
            out.append(up)
            up = self.devices[up].depends_on
        return out

    def as_of(self, device: str) -> datetime | None:
        """The newest sample time taken for ``device``: its state is final up to here."""
        return max((t.last_ts for _, t in self._by_device.get(device, []) if t.last_ts is not None), default=None)

    def tracker(self, device: str, key: TrackKey) -> ConditionTracker:
        return self._trackers[(device, key)]

    def trackers(self, device: str | None = None) -> list[ConditionTracker]:
        if device is None:
            return list(self._trackers.values())
        return [t for _, t in self._by_device.get(device, [])]

    def set_maintenance(self, maintenance: MaintenanceSchedule) -> None:
        self._maintenance = maintenance
        for tracker in self._trackers.values():
            tracker.set_maintenance(maintenance)

    def observe(self, sample: Sample) -> list[Signal]:
        """Feed one sample to every tracker of its device that it bears on."""
        signals: list[Signal] = []
        for _, tracker in self._by_device.get(sample.device, []):
            signals += tracker.observe_sample(sample)
        signals += self._attach_downstream(signals)
        return signals

    def _attach_downstream(self, signals: list[Signal]) -> list[Signal]:
        out: list[Signal] = []
        for sig in signals:
            if sig.kind not in (SignalKind.OPENED, SignalKind.REOPENED) or sig.key.condition not in _REACHABILITY:
                continue
            assert sig.episode is not None
            root = (sig.upstream, sig.episode.affected_episode) if sig.upstream else (sig.device, sig.episode.id)
            since = sig.at - self.rules.evaluation.upstream_tolerance
            for name in self._downstream.get(sig.device, []):
                for tracker in self._reachability(name):
                    out += tracker.mark_affected(root[0], since, root[1])
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
