"""What pollers produce: samples, events and per-device results (plain frozen dataclasses)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, str] = MappingProxyType({})


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class EventKind(StrEnum):
    TRAP = "trap"
    CONFIG_CHANGED = "config_changed"
    REBOOTED = "rebooted"
    AGENT_GAP = "agent_gap"


class Protocol(StrEnum):
    ICMP = "icmp"
    SNMP = "snmp"
    SSH = "ssh"


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of the metric vocabulary (DESIGN.md) for one device at one time."""

    device: str
    metric: str
    value: float
    ts: datetime
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened, rather than a reading: a trap, a reboot, a configuration change."""

    device: str
    kind: EventKind
    ts: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PollError:
    """Why one protocol failed for one device in one round. ``message`` never holds a secret."""

    device: str
    protocol: Protocol
    message: str
    retryable: bool = True


@dataclass(slots=True)
class PollResult:
    """Everything one poller learnt about one device in one round."""

    device: str
    protocol: Protocol
    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    errors: list[PollError] = field(default_factory=list)
    # facts that are not time series: sysDescr, interface names, the running config, versions...
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def fail(self, message: str, *, retryable: bool = True) -> PollResult:
        self.errors.append(PollError(self.device, self.protocol, message, retryable))
        return self
