"""Pure functions that apply one action to a ticket and return the new ticket and the event recording it.

Every function checks the action against ``TRANSITIONS`` and raises ``IllegalTransition`` (with the ticket,
state and reason) when it is not allowed. Nothing here reads a clock: ``at`` is the event time of the change,
``recorded`` (when given) the time weibao learnt it.

Time order: a person's action is never dated before the ticket's last change. What monitoring learns late
(actor ``system``: a restoration, a promotion, an affected device from an agent's backlog) keeps the time it
happened, even if that is before changes people made meanwhile; it is added, and changes nothing people did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NamedTuple

from weibao.collector.tickets.model import (
    AUTO_CLOSE_AFTER,
    DEFAULT_REOPEN_WINDOW,
    LEVELS,
    SYSTEM,
    TRANSITIONS,
    Action,
    IllegalTransition,
    Ticket,
    TicketEvent,
    TicketKind,
    TicketState,
    level_is_higher,
)


class Change(NamedTuple):
    """The result of one action: the ticket after it, and the event that was appended to its history."""

    ticket: Ticket
    event: TicketEvent


def later(ticket: Ticket, at: datetime) -> datetime:
    """``at``, or the ticket's last change if that is later: when a person acts, never before the last change."""
    return max(at, ticket.last_activity)


def allowed(state: TicketState | None, action: Action) -> frozenset[TicketState]:
    """The states ``action`` may lead to from ``state``; empty when the action is illegal there."""
    return TRANSITIONS.get((state, action), frozenset())


def _check(ticket_id: str, state: TicketState | None, action: Action, target: TicketState | None) -> None:
    targets = allowed(state, action)
    if not targets:
        raise IllegalTransition(ticket_id, state, action, "not allowed by the transition table")
    if target not in targets:
        where = target.value if target is not None else "an unnamed state"
        raise IllegalTransition(ticket_id, state, action, f"cannot lead to {where}")


def _aware(ticket_id: str, action: Action, at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise IllegalTransition(ticket_id, None, action, "the time of a change must carry a UTC offset")


def _apply(ticket: Ticket, action: Action, at: datetime, actor: str, *, note: str = "",
           target: TicketState | None = None, level: int | None = None, devices: tuple[str, ...] = (),
           recorded: datetime | None = None, **fields: object) -> Change:
    _aware(ticket.id, action, at)
    if not actor:
        raise IllegalTransition(ticket.id, ticket.state, action, "every change needs an actor")
    targets = allowed(ticket.state, action)
    if target is None and len(targets) == 1:
        (target,) = targets
    _check(ticket.id, ticket.state, action, target)
    assert target is not None  # _check refused every other case
    to_state = target
    if actor != SYSTEM and ticket.events and at < ticket.last_activity:
        raise IllegalTransition(ticket.id, ticket.state, action,
                                f"{at.isoformat()} is before the ticket's last change "
                                f"({ticket.last_activity.isoformat()})")
    if at < ticket.opened_at:
        raise IllegalTransition(ticket.id, ticket.state, action,
                                f"{at.isoformat()} is before the ticket was opened ({ticket.opened_at.isoformat()})")
    new_level = ticket.level if level is None else level
    event = TicketEvent(ticket_id=ticket.id, seq=len(ticket.events), at=at, actor=actor, kind=action,
                        note=note, from_state=ticket.state, to_state=to_state,
                        from_level=ticket.level, to_level=new_level, devices=devices, recorded_at=recorded)
    new = replace(ticket, state=to_state, level=new_level, events=(*ticket.events, event),
                  **fields)  # type: ignore[arg-type]  # fields are Ticket's own timestamp/affected fields
    return Change(new, event)


def _check_level(ticket_id: str, action: Action, level: int) -> None:
    if level not in LEVELS:
        raise IllegalTransition(ticket_id, None, action, f"level must be one of {LEVELS}, not {level!r}")


def open_ticket(*, ticket_id: str, device: str, rule: str, level: int, at: datetime, actor: str = SYSTEM,
                episode: str | None = None, affected: Iterable[str] = (), note: str = "",
                kind: TicketKind = TicketKind.FAULT, summary: str = "", recorded: datetime | None = None) -> Change:
    """A new ticket in state OPEN; ``at`` is when the fault was raised or the request submitted (the
    response clock starts there)."""
    _aware(ticket_id, Action.OPEN, at)
    _check_level(ticket_id, Action.OPEN, level)
    _check(ticket_id, None, Action.OPEN, TicketState.OPEN)
    if not actor:
        raise IllegalTransition(ticket_id, None, Action.OPEN, "every change needs an actor")
    devices = _unique(affected, exclude=device)
    event = TicketEvent(ticket_id=ticket_id, seq=0, at=at, actor=actor, kind=Action.OPEN, note=note,
                        from_state=None, to_state=TicketState.OPEN, from_level=None, to_level=level,
                        devices=devices, recorded_at=recorded)
    ticket = Ticket(id=ticket_id, device=device, rule=rule, level=level, state=TicketState.OPEN,
                    opened_at=at, affected=devices, episode=episode, events=(event,), kind=kind, summary=summary)
    return Change(ticket, event)


def promote(ticket: Ticket, *, level: int, at: datetime, actor: str = SYSTEM, note: str = "",
            recorded: datetime | None = None) -> Change:
    """Raise the ticket's level; a level that is not higher than the current one is refused."""
    _check_level(ticket.id, Action.PROMOTE, level)
    if not level_is_higher(level, ticket.level):
        raise IllegalTransition(ticket.id, ticket.state, Action.PROMOTE,
                                f"levels only rise: level {level} is not above level {ticket.level}")
    if ticket.promotions and at < ticket.promotions[-1][0]:
        raise IllegalTransition(ticket.id, ticket.state, Action.PROMOTE,
                                f"{at.isoformat()} is before the last promotion "
                                f"({ticket.promotions[-1][0].isoformat()})")
    return _apply(ticket, Action.PROMOTE, at, actor, note=note, level=level, recorded=recorded)


def accept(ticket: Ticket, *, at: datetime, actor: str, note: str = "") -> Change:
    """An engineer takes the ticket: stops the response clock."""
    if ticket.accepted_at is not None:
        raise IllegalTransition(ticket.id, ticket.state, Action.ACCEPT,
                                f"already accepted at {ticket.accepted_at.isoformat()}")
    return _apply(ticket, Action.ACCEPT, at, actor, note=note, accepted_at=at)


def restore(ticket: Ticket, *, at: datetime, actor: str = SYSTEM, note: str = "",
            recorded: datetime | None = None) -> Change:
    """Service is back: automatically when the fault clears, or by an engineer (a workaround counts).

    An engineer must say what was done (``note``); the automatic restoration may leave it empty.
    """
    if actor != SYSTEM and blank(note):
        raise IllegalTransition(ticket.id, ticket.state, Action.RESTORE,
                                "an engineer restoring a ticket must say how (a note)")
    return _apply(ticket, Action.RESTORE, at, actor, note=note, target=TicketState.RESTORED, restored_at=at,
                  recorded=recorded)


def report(ticket: Ticket, *, at: datetime, actor: str, note: str = "") -> Change:
    """The fault was reported to the client's maintenance department: stops the report clock."""
    if ticket.reported_at is not None:
        raise IllegalTransition(ticket.id, ticket.state, Action.REPORT,
                                f"already reported at {ticket.reported_at.isoformat()}")
    return _apply(ticket, Action.REPORT, at, actor, note=note, reported_at=at)


def comment(ticket: Ticket, *, at: datetime, actor: str, note: str) -> Change:
    """A remark in the ticket's history; changes nothing else."""
    if blank(note):
        raise IllegalTransition(ticket.id, ticket.state, Action.COMMENT, "a comment needs text")
    return _apply(ticket, Action.COMMENT, at, actor, note=note)


def confirm(ticket: Ticket, *, at: datetime, actor: str, note: str = "") -> Change:
    """The client confirms a handed-over solution: the ticket closes (contract.md, "Closing")."""
    if ticket.solution_at is None:
        raise IllegalTransition(ticket.id, ticket.state, Action.CLOSE, "no solution was handed over yet")
    return close(ticket, at=at, actor=actor, note=note or "client confirmed the solution")


def close(ticket: Ticket, *, at: datetime, actor: str, note: str = "") -> Change:
    """Close a restored ticket: the client confirmed (actor = who confirmed), or see ``auto_close``."""
    return _apply(ticket, Action.CLOSE, at, actor, note=note, target=TicketState.CLOSED, closed_at=at)


def auto_close_due(ticket: Ticket, now: datetime, *, quiet: timedelta = AUTO_CLOSE_AFTER) -> bool:
    """True when a restored ticket's solution has had no feedback from the client for ``quiet`` (two weeks
    by contract). Counted from the latest solution, not from the last comment; a ticket without a submitted
    solution, or whose latest solution the client answered without confirming, never closes by itself."""
    base = ticket.auto_close_from
    return ticket.state is TicketState.RESTORED and base is not None and now - base >= quiet


def auto_close(ticket: Ticket, *, now: datetime, quiet: timedelta = AUTO_CLOSE_AFTER) -> Change:
    """Close a restored ticket whose solution got no feedback for ``quiet``; ``closed_at`` is when the quiet
    ended (dated by the solution, so a later comment cannot delay it)."""
    base = ticket.auto_close_from
    if base is None or not auto_close_due(ticket, now, quiet=quiet):
        raise IllegalTransition(ticket.id, ticket.state, Action.CLOSE,
                                f"not restored, no solution, or not quiet for {quiet} since the solution")
    at = base + quiet
    days = quiet.days if quiet.days * 86400 == quiet.total_seconds() else None
    note = f"{days} 天无反馈，自动关闭" if days is not None else f"{quiet} 无反馈，自动关闭"
    return _apply(ticket, Action.CLOSE, at, SYSTEM, note=note, target=TicketState.CLOSED, closed_at=at)


def reopen_due(ticket: Ticket, at: datetime, *, window: timedelta = DEFAULT_REOPEN_WINDOW) -> bool:
    """True when a fault returning at ``at`` should re-open this ticket rather than open a new one."""
    return (ticket.state is TicketState.RESTORED and ticket.restored_at is not None
            and timedelta(0) <= at - ticket.restored_at <= window)


def reopen(ticket: Ticket, *, at: datetime, actor: str = SYSTEM, note: str = "",
           window: timedelta = DEFAULT_REOPEN_WINDOW) -> Change:
    """The restored fault returned within ``window``: back to ACCEPTED if it had been accepted, else OPEN.

    ``restored_at`` is cleared, so the restoration clock runs again against its original deadline.
    """
    if ticket.state is TicketState.RESTORED and not reopen_due(ticket, at, window=window):
        restored = ticket.restored_at.isoformat() if ticket.restored_at else "never"
        raise IllegalTransition(ticket.id, ticket.state, Action.REOPEN,
                                f"restored at {restored}, outside the re-open window of {window}")
    target = TicketState.ACCEPTED if ticket.accepted_at is not None else TicketState.OPEN
    return _apply(ticket, Action.REOPEN, at, actor, note=note, target=target, restored_at=None)


def attach_affected(ticket: Ticket, *, devices: Iterable[str], at: datetime, actor: str = SYSTEM,
                    note: str = "", recorded: datetime | None = None) -> Change:
    """Devices whose upstream is this ticket's device went down: list them here instead of new tickets."""
    new = tuple(d for d in _unique(devices, exclude=ticket.device) if d not in ticket.affected)
    if not new:
        raise IllegalTransition(ticket.id, ticket.state, Action.ATTACH_AFFECTED,
                                "no device that is not already listed")
    return _apply(ticket, Action.ATTACH_AFFECTED, at, actor, note=note, devices=new,
                  affected=(*ticket.affected, *new), recorded=recorded)


def blank(note: str) -> bool:
    """Whether ``note`` says nothing a reader can see: only spaces, control or invisible format characters
    (a zero-width space, a NUL) count as no note."""
    return not any(c.isprintable() and not c.isspace() for c in note)


def _need_note(ticket: Ticket, action: Action, note: str, what: str) -> None:
    if blank(note):
        raise IllegalTransition(ticket.id, ticket.state, action, f"{action.value} needs {what} (a note)")


def solution(ticket: Ticket, *, at: datetime, actor: str, note: str) -> Change:
    """What was done, handed to the client: restores a request that is not restored yet; the two weeks
    without feedback after which it closes by itself count from here."""
    _need_note(ticket, Action.SOLUTION, note, "what was done")
    restored = ticket.restored_at if ticket.restored_at is not None else at
    return _apply(ticket, Action.SOLUTION, at, actor, note=note, target=TicketState.RESTORED, solution_at=at,
                  restored_at=restored)


def feedback(ticket: Ticket, *, at: datetime, actor: str, note: str) -> Change:
    """The client's answer to a solution (not solved yet, a question): the ticket no longer closes by itself
    until the next solution, whose two weeks count afresh."""
    if ticket.solution_at is None:
        raise IllegalTransition(ticket.id, ticket.state, Action.FEEDBACK, "no solution was handed over yet")
    _need_note(ticket, Action.FEEDBACK, note, "the client's words")
    return _apply(ticket, Action.FEEDBACK, at, actor, note=note)


def pause(ticket: Ticket, *, at: datetime, actor: str, note: str) -> Change:
    """Hand the problem over (application software, another department): its clocks stop until ``resume``."""
    if ticket.paused:
        raise IllegalTransition(ticket.id, ticket.state, Action.PAUSE, "already paused")
    _need_note(ticket, Action.PAUSE, note, "a reason")
    return _apply(ticket, Action.PAUSE, at, actor, note=note)


def resume(ticket: Ticket, *, at: datetime, actor: str, note: str = "") -> Change:
    if not ticket.paused:
        raise IllegalTransition(ticket.id, ticket.state, Action.RESUME, "not paused")
    return _apply(ticket, Action.RESUME, at, actor, note=note)


def dispatch(ticket: Ticket, *, at: datetime, actor: str, note: str = "") -> Change:
    """An engineer is sent on site: the on-site clock starts (15 min / 30 min / 1 h by level)."""
    if ticket.dispatched_at is not None:
        raise IllegalTransition(ticket.id, ticket.state, Action.DISPATCH,
                                f"already dispatched at {ticket.dispatched_at.isoformat()}")
    return _apply(ticket, Action.DISPATCH, at, actor, note=note, dispatched_at=at)


def onsite(ticket: Ticket, *, at: datetime, actor: str, note: str = "") -> Change:
    """The dispatched engineer arrived on site: stops the on-site clock."""
    if ticket.dispatched_at is None:
        raise IllegalTransition(ticket.id, ticket.state, Action.ONSITE, "nobody was dispatched")
    if ticket.onsite_at is not None:
        raise IllegalTransition(ticket.id, ticket.state, Action.ONSITE,
                                f"already on site at {ticket.onsite_at.isoformat()}")
    return _apply(ticket, Action.ONSITE, at, actor, note=note, onsite_at=at)


def _unique(devices: Iterable[str], *, exclude: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for d in devices:
        if d and d != exclude:
            seen.setdefault(d, None)
    return tuple(seen)
