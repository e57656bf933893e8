"""What the pages show about devices and ticket clocks, with one status word each (the colour it gets).

Status words and their colours mean the same on every page: ``up`` / ``met`` green, ``down`` / ``breached``
red, ``due`` amber (a deadline is near: the rule of the due-soon notifications), ``running`` blue,
``unknown`` grey (no data, or none for ``stale_after_s``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from weibao.collector.contract import Clocks
from weibao.collector.contract.clocks import Clock
from weibao.collector.engine.wiring import ContractServices
from weibao.collector.notify.model import due_soon_lead
from weibao.collector.tickets.model import Ticket

UP, DOWN, UNKNOWN = "up", "down", "unknown"


@dataclass(frozen=True, slots=True)
class DeviceRow:
    name: str
    site: str
    agent: str
    kind: str
    category: str
    status: str
    last_seen: datetime | None
    latest: dict[str, float]
    depends_on: str | None = None
    tags: list[str] = field(default_factory=list)
    asset: dict[str, Any] = field(default_factory=dict)


def classify(d: dict[str, Any], now: datetime, stale_after_s: float) -> DeviceRow:
    """One device of ``Registry.states()`` with its status: a device heard from more than ``stale_after_s``
    ago is unknown, whatever it said last."""
    seen = datetime.fromisoformat(d["last_seen"]) if d["last_seen"] else None
    if seen is None or d["up"] is None or (now - seen).total_seconds() > stale_after_s:
        status = UNKNOWN
    else:
        status = UP if d["up"] else DOWN
    return DeviceRow(d["name"], d["site"], d["agent"], d["kind"], d["category"], status, seen, d["latest"],
                     d["depends_on"], d["tags"], d["asset"])


def device_rows(states: Iterable[dict[str, Any]], now: datetime, stale_after_s: float) -> list[DeviceRow]:
    """The active devices with their status."""
    return [classify(d, now, stale_after_s) for d in states if d["active"]]


def counts(rows: Iterable[DeviceRow], key: str) -> list[tuple[str, dict[str, int]]]:
    """(group, {up, down, unknown, total}) per value of ``key`` (``site`` or ``category``), by name."""
    groups: dict[str, dict[str, int]] = {}
    for r in rows:
        g = groups.setdefault(getattr(r, key), {UP: 0, DOWN: 0, UNKNOWN: 0, "total": 0})
        g[r.status] += 1
        g["total"] += 1
    return sorted(groups.items())


@dataclass(frozen=True, slots=True)
class ClockView:
    name: str
    status: str  # met | breached | due | running
    deadline: datetime
    met_at: datetime | None
    breached: bool
    remaining: timedelta
    lead: timedelta  # due soon from deadline - lead on


def clock_view(c: Clock, now: datetime) -> ClockView:
    lead = due_soon_lead(c.start, c.deadline)
    if c.breached:
        status = "breached"
    elif c.met_at is not None:
        status = "met"
    elif c.deadline - now <= lead:
        status = "due"
    else:
        status = "running"
    return ClockView(c.name.value, status, c.deadline, c.met_at, c.breached, c.remaining(now), lead)


def clock_views(clocks: Clocks, now: datetime) -> list[ClockView]:
    return [clock_view(c, now) for c in clocks]


@dataclass(frozen=True, slots=True)
class TicketRow:
    ticket: Ticket
    clocks: list[ClockView]

    @property
    def urgency(self) -> tuple[int, float]:
        """Sort key: level first, then the nearest running deadline (breached ones first)."""
        running = [c.remaining.total_seconds() for c in self.clocks if c.met_at is None]
        return self.ticket.level, min(running) if running else float("inf")


def ticket_rows(svc: ContractServices, tickets: Iterable[Ticket], now: datetime) -> list[TicketRow]:
    return [TicketRow(t, clock_views(svc.clocks(t, now), now)) for t in tickets]
