"""Fault tickets: states, actions, the one transition table, and the frozen Ticket / TicketEvent records.

A ticket is one fault episode of one device, or one root cause: devices whose upstream is down are listed in
``affected`` instead of opening tickets of their own. Levels follow the contract: 1 major, 2 severe,
3 general; a *higher* level is a *smaller* number, and levels only rise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from weibao.collector.errors import CollectorError

SYSTEM = "system"  # actor of every automatic change (evaluator, auto-close)
CLIENT = "client"  # conventional actor of a client's confirmation

LEVELS = (1, 2, 3)
LEVEL_NAMES_ZH: Mapping[int, str] = {1: "一级（重大）", 2: "二级（严重）", 3: "三级（一般）"}

# a restored fault that returns within this window re-opens its ticket instead of opening a new one; the
# contract rules carry the configured value (rules/contract.yaml, evaluation.reopen_window)
DEFAULT_REOPEN_WINDOW = timedelta(minutes=30)
# a restored ticket without feedback for two weeks is closed (contract.md, "Clocks")
AUTO_CLOSE_AFTER = timedelta(days=14)


class TicketState(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    RESTORED = "restored"
    CLOSED = "closed"


class Action(StrEnum):
    """What can happen to a ticket; each action is recorded as one event of the same kind."""

    OPEN = "open"
    PROMOTE = "promote"
    ACCEPT = "accept"
    RESTORE = "restore"
    REPORT = "report"
    COMMENT = "comment"
    CLOSE = "close"
    REOPEN = "reopen"
    ATTACH_AFFECTED = "attach_affected"


_O, _A, _R, _C = TicketState.OPEN, TicketState.ACCEPTED, TicketState.RESTORED, TicketState.CLOSED

# The one transition table: (state before, action) -> states the action may lead to. ``None`` is "no ticket
# yet". A pair that is absent is an illegal transition. Only REOPEN has two targets: a ticket that an
# engineer had accepted goes back to ACCEPTED (the response was given), otherwise to OPEN.
TRANSITIONS: Mapping[tuple[TicketState | None, Action], frozenset[TicketState]] = {
    (None, Action.OPEN): frozenset({_O}),
    (_O, Action.ACCEPT): frozenset({_A}),
    # an engineer acknowledging a fault that cleared before anyone accepted it
    (_R, Action.ACCEPT): frozenset({_R}),
    (_O, Action.RESTORE): frozenset({_R}),
    (_A, Action.RESTORE): frozenset({_R}),
    (_O, Action.PROMOTE): frozenset({_O}),
    (_A, Action.PROMOTE): frozenset({_A}),
    # per-day and per-month sums can cross a threshold when the episode has already ended
    (_R, Action.PROMOTE): frozenset({_R}),
    (_A, Action.REPORT): frozenset({_A}),
    (_R, Action.REPORT): frozenset({_R}),
    (_O, Action.COMMENT): frozenset({_O}),
    (_A, Action.COMMENT): frozenset({_A}),
    (_R, Action.COMMENT): frozenset({_R}),
    (_C, Action.COMMENT): frozenset({_C}),
    (_O, Action.ATTACH_AFFECTED): frozenset({_O}),
    (_A, Action.ATTACH_AFFECTED): frozenset({_A}),
    (_R, Action.CLOSE): frozenset({_C}),
    (_R, Action.REOPEN): frozenset({_O, _A}),
}


class TicketError(CollectorError):
    """Root of the ticket package's errors. Never retryable: the same call would fail again."""

    retryable = False


class IllegalTransition(TicketError):
    """The action is not allowed in the ticket's state (or breaks a rule such as "levels only rise")."""

    def __init__(self, ticket_id: str, state: TicketState | None, action: Action, reason: str) -> None:
        self.ticket_id = ticket_id
        self.state = state
        self.action = action
        self.reason = reason
        where = state.value if state is not None else "no ticket"
        super().__init__(f"ticket {ticket_id}: cannot {action.value} in state {where}: {reason}")


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One change of one ticket: when, who, what, and the state (and level) before and after."""

    ticket_id: str
    seq: int  # 0-based position in the ticket's history
    at: datetime
    actor: str
    kind: Action
    note: str = ""
    from_state: TicketState | None = None
    to_state: TicketState | None = None
    from_level: int | None = None
    to_level: int | None = None
    devices: tuple[str, ...] = ()  # devices named by attach_affected


@dataclass(frozen=True, slots=True)
class Ticket:
    """One fault ticket and its whole history. Change it only through ``weibao.collector.tickets.machine``."""

    id: str
    device: str
    rule: str
    level: int
    state: TicketState
    opened_at: datetime
    accepted_at: datetime | None = None
    restored_at: datetime | None = None
    reported_at: datetime | None = None
    closed_at: datetime | None = None
    affected: tuple[str, ...] = ()
    episode: str | None = None  # the fault episode (collector/contract) this ticket stands for
    events: tuple[TicketEvent, ...] = field(default=())

    @property
    def reopen_count(self) -> int:
        """How many times the fault came back; notifications use it to tell the rounds apart."""
        return sum(1 for e in self.events if e.kind is Action.REOPEN)

    @property
    def last_activity(self) -> datetime:
        return self.events[-1].at if self.events else self.opened_at


def level_is_higher(new: int, old: int) -> bool:
    """True when ``new`` is a more serious level than ``old`` (1 is the most serious)."""
    return new < old
