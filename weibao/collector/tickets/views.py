"""Ticket JSON for the API and reports, in the shape DESIGN.md names (times as ISO 8601 with an offset)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from weibao.collector.contract.calendar import WorkingCalendar
from weibao.collector.contract.clocks import Clocks, Pause, compute_clocks
from weibao.collector.contract.rules import ClockRules
from weibao.collector.tickets.model import LEVEL_NAMES_ZH, Ticket, TicketEvent

CLOCK_NAMES = ("response", "restoration", "report", "onsite")


class ClockLike(Protocol):
    """What a view needs of one SLA clock; the contract core's clock results have these attributes."""

    @property
    def deadline(self) -> datetime | None: ...

    @property
    def met_at(self) -> datetime | None: ...

    @property
    def breached(self) -> bool: ...


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def clock_json(clock: ClockLike | None) -> dict[str, Any]:
    if clock is None:
        return {"deadline": None, "met_at": None, "breached": False}
    return {"deadline": _ts(clock.deadline), "met_at": _ts(clock.met_at), "breached": bool(clock.breached)}


def event_json(event: TicketEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": _ts(event.at),
        "actor": event.actor,
        "kind": event.kind.value,
        "note": event.note,
        "from_state": event.from_state.value if event.from_state is not None else None,
        "to_state": event.to_state.value if event.to_state is not None else None,
        "from_level": event.from_level,
        "to_level": event.to_level,
        "devices": list(event.devices),
        "recorded_at": _ts(event.recorded_at),
    }


def ticket_clocks(ticket: Ticket, *, calendar: WorkingCalendar, limits: ClockRules, now: datetime) -> Clocks:
    """The ticket's clocks as of ``now``: from its opening at its first level, each promotion applied as the
    contract says, its paused time left out, the on-site clock once dispatched (contract.md)."""
    pauses = [Pause(start, end, reason) for start, end, reason in ticket.pauses]
    return compute_clocks(ticket.initial_level, ticket.opened_at, ticket.accepted_at, ticket.restored_at,
                          ticket.reported_at, pauses, calendar, now, limits=limits, promotions=ticket.promotions,
                          dispatched_at=ticket.dispatched_at, onsite_at=ticket.onsite_at)


def clocks_by_name(clocks: Clocks) -> dict[str, ClockLike]:
    return {c.name.value: c for c in clocks}


def ticket_json(ticket: Ticket, clocks: Mapping[str, ClockLike] | None = None, *,
                with_events: bool = True) -> dict[str, Any]:
    """One ticket as JSON. ``clocks`` maps "response", "restoration", "report" (and "onsite" once dispatched)
    to clock results; a missing clock shows no deadline (the caller had no calendar to compute it; "onsite"
    before any dispatch)."""
    clocks = clocks or {}
    out: dict[str, Any] = {
        "id": ticket.id,
        "device": ticket.device,
        "rule": ticket.rule,
        "level": ticket.level,
        "level_name": LEVEL_NAMES_ZH[ticket.level],
        "state": ticket.state.value,
        "opened_at": _ts(ticket.opened_at),
        "accepted_at": _ts(ticket.accepted_at),
        "restored_at": _ts(ticket.restored_at),
        "reported_at": _ts(ticket.reported_at),
        "closed_at": _ts(ticket.closed_at),
        "clocks": {name: clock_json(clocks.get(name)) for name in CLOCK_NAMES},
        "affected": list(ticket.affected),
        "episode": ticket.episode,
        "kind": ticket.kind.value,
        "summary": ticket.summary,
        "opened_by": ticket.opened_by,
        "solution_at": _ts(ticket.solution_at),
        "dispatched_at": _ts(ticket.dispatched_at),
        "onsite_at": _ts(ticket.onsite_at),
        "paused": ticket.paused,
        "pauses": [{"start": _ts(s), "end": _ts(e), "reason": r} for s, e, r in ticket.pauses],
    }
    if with_events:
        out["events"] = [event_json(e) for e in ticket.events]
    return out
