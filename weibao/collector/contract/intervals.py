"""Half-open time intervals [start, end) and the few set operations the contract engine needs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """A half-open interval [start, end) of timezone-aware datetimes; ``end`` >= ``start``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("interval bounds must be timezone-aware")
        if self.end < self.start:
            raise ValueError(f"interval ends ({self.end}) before it starts ({self.start})")

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def clip(self, start: datetime, end: datetime) -> Interval | None:
        """The part of this interval inside [start, end), or None when nothing (of positive length) is."""
        lo, hi = max(self.start, start), min(self.end, end)
        return Interval(lo, hi) if hi > lo else None

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted union: overlapping or touching intervals become one; empty intervals vanish."""
    out: list[Interval] = []
    for iv in sorted(i for i in intervals if i.end > i.start):
        if out and iv.start <= out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


def clip_all(intervals: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    """Every interval cut to [start, end), in order, dropping what falls outside."""
    out = []
    for iv in intervals:
        part = iv.clip(start, end)
        if part is not None:
            out.append(part)
    return out


def subtract(intervals: Iterable[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """The parts of ``intervals`` not covered by any of ``holes`` (both taken as unions)."""
    out: list[Interval] = []
    cut = merge(holes)
    for iv in merge(intervals):
        pieces = [iv]
        for hole in cut:
            if hole.end <= iv.start or hole.start >= iv.end:
                continue
            nxt = []
            for p in pieces:
                if p.start < hole.start:
                    nxt.append(Interval(p.start, min(p.end, hole.start)))
                if p.end > hole.end:
                    nxt.append(Interval(max(p.start, hole.end), p.end))
            pieces = [p for p in nxt if p.end > p.start]
        out.extend(pieces)
    return out


def total(intervals: Iterable[Interval]) -> timedelta:
    """Sum of the lengths of the union of ``intervals``."""
    return sum((iv.duration for iv in merge(intervals)), timedelta())
