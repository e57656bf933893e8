"""The tickets of a report period: counts by level and rule, clock compliance, worst cases, still-open ones.

Every ticket is taken as it stood at the report's ``as_of`` (the period's end, or now for a period still
running): its level, state and times are replayed from its events up to then, and its clocks computed
as of then, so a past period's figures do not move when a ticket changes later.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from weibao.collector.contract.calendar import WorkingCalendar
from weibao.collector.contract.clocks import Clock
from weibao.collector.contract.rules import ClockRules
from weibao.collector.tickets.model import LEVELS, Action, Ticket, TicketState
from weibao.collector.tickets.store import TicketStore
from weibao.collector.tickets.views import CLOCK_NAMES, event_json, ticket_clocks

WORST_CASES = 5
_MAX_TICKETS = 1_000_000


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def as_of(ticket: Ticket, t: datetime) -> Ticket | None:
    """The ticket as it stood at ``t`` (its events up to ``t`` replayed); None if it was not open yet."""
    events = [e for e in ticket.events if e.at <= t]
    if not events or ticket.opened_at > t:
        return None
    fields: dict[str, Any] = {"accepted_at": None, "restored_at": None, "reported_at": None, "closed_at": None}
    for e in events:
        if e.kind is Action.ACCEPT and fields["accepted_at"] is None:
            fields["accepted_at"] = e.at
        elif e.kind is Action.RESTORE:
            fields["restored_at"] = e.at
        elif e.kind is Action.REOPEN:
            fields["restored_at"] = None
        elif e.kind is Action.REPORT and fields["reported_at"] is None:
            fields["reported_at"] = e.at
        elif e.kind is Action.CLOSE:
            fields["closed_at"] = e.at
    last = events[-1]
    return replace(ticket, level=last.to_level or ticket.level, state=last.to_state or ticket.state,
                   events=tuple(events), **fields)


def load(store: TicketStore, start: datetime, end: datetime, as_of_t: datetime) -> list[Ticket]:
    """Tickets that matter to [start, end): opened before its end and not closed before its start, each
    as it stood at ``as_of_t``; oldest first."""
    out = []
    for t in store.find(opened_before=end, not_closed_before=start, limit=_MAX_TICKETS):
        then = as_of(t, as_of_t)
        if then is None or (then.closed_at is not None and then.closed_at < start):
            continue
        out.append(then)
    out.sort(key=lambda t: (t.opened_at, t.id))
    return out


def _in(t: datetime | None, start: datetime, end: datetime) -> bool:
    return t is not None and start <= t < end


def _by_level(tickets: Iterable[Ticket]) -> dict[str, int]:
    c = Counter(t.level for t in tickets)
    return {str(level): c.get(level, 0) for level in LEVELS}


def clock_state(c: Clock) -> str:
    if c.breached:
        return "breached"
    return "met" if c.met_at is not None else "pending"


def _overrun_s(c: Clock, as_of_t: datetime) -> float:
    return ((c.met_at or as_of_t) - c.deadline).total_seconds()


def item(t: Ticket, clocks: Sequence[Clock]) -> dict[str, Any]:
    return {"id": t.id, "device": t.device, "rule": t.rule, "level": t.level, "state": t.state.value,
            "opened_at": _iso(t.opened_at), "accepted_at": _iso(t.accepted_at), "restored_at": _iso(t.restored_at),
            "reported_at": _iso(t.reported_at), "closed_at": _iso(t.closed_at), "affected": list(t.affected),
            "clocks": {c.name.value: {"deadline": _iso(c.deadline), "met_at": _iso(c.met_at),
                                      "breached": c.breached, "state": clock_state(c)} for c in clocks}}


def section(tickets: Sequence[Ticket], start: datetime, end: datetime, as_of_t: datetime, *,
            calendar: WorkingCalendar, limits: ClockRules) -> dict[str, Any]:
    """The ``tickets`` and ``clocks`` parts of a report document."""
    opened = [t for t in tickets if _in(t.opened_at, start, end)]
    clocks = {t.id: list(ticket_clocks(t, calendar=calendar, limits=limits, now=as_of_t)) for t in tickets}
    rules: dict[str, Counter[int]] = {}
    for t in opened:
        rules.setdefault(t.rule, Counter())[t.level] += 1
    by_rule = [{"rule": rule, "total": sum(c.values()), **{f"level_{lv}": c.get(lv, 0) for lv in LEVELS}}
               for rule, c in sorted(rules.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))]
    still_open = [t for t in tickets if t.state in (TicketState.OPEN, TicketState.ACCEPTED)]
    tickets_json: dict[str, Any] = {
        "opened": len(opened),
        "opened_by_level": _by_level(opened),
        "restored_by_level": _by_level(t for t in tickets if _in(t.restored_at, start, end)),
        "closed_by_level": _by_level(t for t in tickets if _in(t.closed_at, start, end)),
        "by_rule": by_rule,
        "items": [item(t, clocks[t.id]) for t in opened],
        "still_open": [item(t, clocks[t.id]) for t in still_open],
    }
    clocks_json: dict[str, Any] = {}
    for k, name in enumerate(CLOCK_NAMES):
        states = Counter(clock_state(clocks[t.id][k]) for t in opened)
        breached = sorted((t for t in opened if clocks[t.id][k].breached),
                          key=lambda t: -_overrun_s(clocks[t.id][k], as_of_t))
        clocks_json[name] = {
            "met": states.get("met", 0), "breached": states.get("breached", 0), "pending": states.get("pending", 0),
            "worst": [{"id": t.id, "device": t.device, "level": t.level,
                       "deadline": _iso(clocks[t.id][k].deadline), "met_at": _iso(clocks[t.id][k].met_at),
                       "overrun_s": round(_overrun_s(clocks[t.id][k], as_of_t), 3)}
                      for t in breached[:WORST_CASES]],
        }
    return {"tickets": tickets_json, "clocks": clocks_json}


def per_day(tickets: Iterable[Ticket], days: Sequence[datetime]) -> list[int]:
    """Tickets opened on each local day starting at ``days`` (midnights, in order; the last bounds the end)."""
    counts = [0] * (len(days) - 1)
    for t in tickets:
        for i in range(len(days) - 1):
            if days[i] <= t.opened_at < days[i + 1]:
                counts[i] += 1
                break
    return counts


def timeline(t: Ticket) -> list[dict[str, Any]]:
    return [event_json(e) for e in t.events]
