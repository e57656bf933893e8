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

from weibao.collector.tickets import machine
from weibao.collector.tickets.machine import Change
from weibao.collector.tickets.model import Ticket, TicketError
from weibao.collector.tickets.ops import TicketOps, later

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


def _spec(name: str, apply: Apply, *roles: str, note: bool = False) -> tuple[str, ActionSpec]:
    return name, ActionSpec(name, apply, frozenset(roles or ("engineer",)), note)


ACTIONS: Mapping[str, ActionSpec] = MappingProxyType(dict([
    _spec("accept", lambda t, at, who, note: machine.accept(t, at=at, actor=who, note=note)),
    _spec("restore", lambda t, at, who, note: machine.restore(t, at=at, actor=who, note=note), note=True),
    _spec("report", lambda t, at, who, note: machine.report(t, at=at, actor=who, note=note)),
    _spec("comment", lambda t, at, who, note: machine.comment(t, at=at, actor=who, note=note), note=True),
    _spec("close", lambda t, at, who, note: machine.close(t, at=at, actor=who, note=note)),
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
