"""Planned maintenance windows: time in them is planned, raises no fault and is left out of availability."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from weibao.collector.contract.intervals import Interval, merge


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A planned window [start, end) for one or more devices, with the reason shown in reports."""

    devices: frozenset[str]
    start: datetime
    end: datetime
    reason: str

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("maintenance windows need timezone-aware times")
        if self.end <= self.start:
            raise ValueError("a maintenance window must end after it starts")
        if not self.devices:
            raise ValueError("a maintenance window names at least one device")

    @property
    def interval(self) -> Interval:
        return Interval(self.start, self.end)


class MaintenanceSchedule:
    """The known windows, by device. Immutable: add a window by building a new schedule."""

    def __init__(self, windows: Iterable[MaintenanceWindow] = ()) -> None:
        self.windows = tuple(sorted(windows, key=lambda w: w.start))

    def for_device(self, device: str) -> list[Interval]:
        """The union of the windows covering ``device``, in order."""
        return merge(w.interval for w in self.windows if device in w.devices)

    def window_at(self, device: str, t: datetime) -> MaintenanceWindow | None:
        for w in self.windows:
            if device in w.devices and w.start <= t < w.end:
                return w
        return None
