"""What people may do to a ticket: one table of actions, shared by the API, the CLI (through the API) and the
web console, so that a new step is declared once.

``available(ticket, role)`` lists the actions the state machine allows on the ticket as it stands, for that
role: it tries each one on the ticket (nothing is saved), so what it offers is exactly what ``perform``
would accept. ``perform`` applies one through ``TicketOps`` (retry on a concurrent change, notifications).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from weibao.collector.tickets import machine
from weibao.collector.tickets.machine import Change, later
from weibao.collector.tickets.model import Ticket, TicketError

if TYPE_CHECKING:  # the command line reads the table without loading the stores
    from weibao.collector.tickets.ops import TicketOps

# (ticket, at, actor, note) -> the change
Apply = Callable[[Ticket, datetime, str, str], Change]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action people take: who may (roles of tokens and console users), and whether it needs a note
    (the machine refuses it without one; a form shows the field as required)."""

    name: str
    apply: Apply
    roles: frozenset[str]
    note_required: bool = False
    what: str = ""  # one line for help texts and buttons' titles


def _spec(name: str, what: str, apply: Apply, *roles: str, note: bool = False) -> tuple[str, ActionSpec]:
    return name, ActionSpec(name, apply, frozenset(roles or ("engineer",)), note, what)


ENGINEER, CLIENT = "engineer", "client"

ACTIONS: Mapping[str, ActionSpec] = MappingProxyType(dict([
    _spec("accept", "take the ticket: stops the response clock",
          lambda t, at, who, note: machine.accept(t, at=at, actor=who, note=note)),
    _spec("restore", "service is back (a workaround counts): say how",
          lambda t, at, who, note: machine.restore(t, at=at, actor=who, note=note), note=True),
    _spec("report", "reported to the client's maintenance department: stops the report clock",
          lambda t, at, who, note: machine.report(t, at=at, actor=who, note=note)),
    _spec("solution", "hand the solution to the client: two weeks without feedback close the ticket",
          lambda t, at, who, note: machine.solution(t, at=at, actor=who, note=note), note=True),
    _spec("pause", "handed to another department: its clocks stop until resumed (say why)",
          lambda t, at, who, note: machine.pause(t, at=at, actor=who, note=note), note=True),
    _spec("resume", "back with us: the clocks run again",
          lambda t, at, who, note: machine.resume(t, at=at, actor=who, note=note)),
    _spec("dispatch", "an engineer is on the way: starts the on-site clock",
          lambda t, at, who, note: machine.dispatch(t, at=at, actor=who, note=note)),
    _spec("onsite", "the engineer arrived on site: stops the on-site clock",
          lambda t, at, who, note: machine.onsite(t, at=at, actor=who, note=note)),
    _spec("comment", "a remark in the ticket's history",
          lambda t, at, who, note: machine.comment(t, at=at, actor=who, note=note), note=True),
    _spec("close", "close a restored ticket (the client agreed)",
          lambda t, at, who, note: machine.close(t, at=at, actor=who, note=note)),
    # the client's two answers to a solution: not solved yet (the two weeks count again), or solved
    _spec("feedback", "the client: not solved yet, or a question (the two weeks count again)",
          lambda t, at, who, note: machine.feedback(t, at=at, actor=who, note=note), CLIENT, note=True),
    _spec("confirm", "the client: solved, the ticket may be closed",
          lambda t, at, who, note: machine.confirm(t, at=at, actor=who, note=note), CLIENT),
]))

_PROBE_NOTE = "-"  # a stand-in note when trying an action that needs one


def allowed_for(ticket: Ticket, name: str, role: str, now: datetime) -> bool:
    """Whether ``role`` may take action ``name`` on ``ticket`` as it stands at ``now``."""
    spec = ACTIONS.get(name)
    if spec is None or role not in spec.roles:
        return False
    try:
        spec.apply(ticket, later(ticket, now), "probe", _PROBE_NOTE)
    except TicketError:
        return False
    return True


def available(ticket: Ticket, role: str, now: datetime) -> list[str]:
    """The actions ``role`` may take on ``ticket`` now, in the table's order."""
    return [name for name in ACTIONS if allowed_for(ticket, name, role, now)]


class UnknownAction(TicketError):
    """No such action, or not one this role may take."""


def perform(ops: TicketOps, ticket_id: str, name: str, *, actor: str, role: str, note: str,
            now: Callable[[], datetime]) -> Ticket | None:
    """Apply action ``name`` to the stored ticket (None: no such ticket).

    Raises ``UnknownAction`` for an action this role may not take, ``IllegalTransition`` when the ticket's
    state does not allow it (with the reason).
    """
    spec = ACTIONS.get(name)
    if spec is None or role not in spec.roles:
        raise UnknownAction(f"no action {name!r} for a {role}")

    def act(t: Ticket) -> Change:
        return spec.apply(t, later(t, now()), actor, note)

    return ops.change(ticket_id, act)
