"""What one round of poll results says about one device: latest sample per series, events, errors, facts."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from weibao.core.model import Event, PollError, PollResult, Protocol, Sample

log = logging.getLogger(__name__)


def label_key(labels: Mapping[str, str]) -> str:
    """A stable key for a label set, used to remember a series between runs."""
    if len(labels) == 1:  # the common case (ifName, mount, sensor), on the hot path
        for k, v in labels.items():
            return f"{k}={v}"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def label_text(labels: Mapping[str, str]) -> str:
    """What a reader sees: the label values (``/var``, ``GigabitEthernet0/1``)."""
    return " ".join(labels[k] for k in sorted(labels))


@dataclass
class DeviceRound:
    """Everything the pollers returned for one device in this round, merged across protocols."""

    device: str
    # metric -> label_key -> the latest sample of that series
    latest: dict[str, dict[str, Sample]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    errors: list[PollError] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    protocols: set[Protocol] = field(default_factory=set)
    # protocols whose result carried data besides its own *.up sample
    with_data: set[Protocol] = field(default_factory=set)

    def add(self, result: PollResult) -> None:
        self.protocols.add(result.protocol)
        for s in result.samples:
            series = self.latest.setdefault(s.metric, {})
            key = label_key(s.labels) if s.labels else ""
            old = series.get(key)
            if old is None or s.ts >= old.ts:
                series[key] = s
            if s.metric not in ("up", "snmp.up", "ssh.up"):
                self.with_data.add(result.protocol)
        self.events.extend(result.events)
        self.errors.extend(result.errors)
        for k, v in result.facts.items():
            self.facts.setdefault(k, v)

    def series(self, metric: str) -> list[Sample]:
        """Every series of one metric (one per label set), in label order."""
        return [s for _, s in self.keyed(metric)]

    def keyed(self, metric: str) -> list[tuple[str, Sample]]:
        """Every series of one metric with its ``label_key``, in label order."""
        return sorted(self.latest.get(metric, {}).items())

    def get(self, metric: str) -> Sample | None:
        """The sample of an unlabelled metric, or None."""
        return self.latest.get(metric, {}).get("")

    def value(self, metric: str) -> float | None:
        """The value of an unlabelled metric, or None."""
        s = self.get(metric)
        return None if s is None else s.value

    def max_of(self, metric: str) -> Sample | None:
        found = self.latest.get(metric, {}).values()
        return max(found, key=lambda s: s.value, default=None)

    def icmp_answered(self) -> bool | None:
        """True/False when ICMP was measured, None when it was not."""
        loss = self.value("icmp.loss_pct")
        if loss is not None:
            return loss < 100
        return None

    def answered(self, protocol: Protocol) -> bool | None:
        """Whether the device answered this protocol this round; None when it was not asked."""
        if protocol is Protocol.ICMP:
            return self.icmp_answered()
        up = self.value(f"{protocol.value}.up")
        if up is not None:
            return up > 0
        if protocol not in self.protocols:
            return None
        failed = any(e.protocol is protocol for e in self.errors)
        return protocol in self.with_data or not failed

    def failure(self, protocol: Protocol) -> str | None:
        """Why this protocol failed this round (its first error), or None when it did not."""
        msgs = [e.message for e in self.errors if e.protocol is protocol]
        if msgs:
            return msgs[0]
        up = self.value(f"{protocol.value}.up")
        return "no answer" if up is not None and up <= 0 else None

    def reachable(self) -> bool:
        """Reachable when ICMP, SNMP or SSH answered, or the pollers' derived ``up`` says so."""
        up = self.value("up")
        if up is not None and up > 0:
            return True
        return any(self.answered(p) for p in Protocol)


def by_device(results: Iterable[PollResult], names: Sequence[str]) -> dict[str, DeviceRound]:
    """Group results by device; results for devices outside ``names`` are dropped with a warning."""
    known = set(names)
    rounds = {n: DeviceRound(n) for n in names}
    stray: set[str] = set()
    for r in results:
        if r.device not in known:
            stray.add(r.device)
            continue
        rounds[r.device].add(r)
    if stray:
        log.warning("results for devices not in the inventory ignored: %s", ", ".join(sorted(stray)))
    return rounds
