"""Tickets: kinds, states, actions, the one transition table, and the frozen Ticket / TicketEvent records.

A ticket is one fault episode of one device, or one root cause (devices whose upstream is down are listed in
``affected`` instead of opening tickets of their own), or a service request a person opened: a fault a user
reports, a request for guidance, a general request (contract.md, "Fault levels"). Levels follow the
contract: 1 major, 2 severe, 3 general; a *higher* level is a *smaller* number, and levels only rise.

Every change is an event with ``at``, the time it happened (event time: for what monitoring learns, the
samples' time), and ``recorded_at``, when weibao wrote it: the two differ for what is learnt late (an agent's
backlog). Facts learnt late are added as events of their own time; they never undo what people did.
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


class TicketKind(StrEnum):
    FAULT = "fault"          # detected by monitoring, or a fault a user reports
    GUIDANCE = "guidance"    # a request for guidance (技术咨询)
    REQUEST = "request"      # a general request (一般服务请求)


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
    SOLUTION = "solution"    # what was done, handed to the client: the two-week auto-close counts from it
    FEEDBACK = "feedback"    # the client's answer: no closing by itself until the next solution
    PAUSE = "pause"          # handed over to another department: the time until RESUME leaves every clock
    RESUME = "resume"
    DISPATCH = "dispatch"    # an engineer sent on site: starts the on-site clock
    ONSITE = "onsite"        # the engineer arrived: stops it


_O, _A, _R, _C = TicketState.OPEN, TicketState.ACCEPTED, TicketState.RESTORED, TicketState.CLOSED

# The one transition table: (state before, action) -> states the action may lead to. ``None`` is "no ticket
# yet". A pair that is absent is an illegal transition. Only REOPEN has two targets: a ticket that an
# engineer had accepted goes back to ACCEPTED (the response was given), otherwise to OPEN.
_ALL = (TicketState.OPEN, TicketState.ACCEPTED, TicketState.RESTORED, TicketState.CLOSED)
_WORKED = (TicketState.OPEN, TicketState.ACCEPTED)  # not yet restored
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
    # what monitoring learns late about an outage is added, whatever people did meanwhile
    **{(s, Action.ATTACH_AFFECTED): frozenset({s}) for s in _ALL},
    (_R, Action.CLOSE): frozenset({_C}),
    (_R, Action.REOPEN): frozenset({_O, _A}),
    # a solution handed over restores service for a request; after a restoration it completes the ticket
    (_A, Action.SOLUTION): frozenset({_R}),
    (_R, Action.SOLUTION): frozenset({_R}),
    # the client answers a solution (the machine checks one was handed over)
    (_R, Action.FEEDBACK): frozenset({_R}),
    **{(s, Action.PAUSE): frozenset({s}) for s in _WORKED},
    **{(s, Action.RESUME): frozenset({s}) for s in (_O, _A, _R)},
    **{(s, Action.DISPATCH): frozenset({s}) for s in _WORKED},
    **{(s, Action.ONSITE): frozenset({s}) for s in (_O, _A, _R)},
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
    recorded_at: datetime | None = None  # when weibao wrote it (None: at ``at``, or stored before it was kept)


@dataclass(frozen=True, slots=True)
class Ticket:
    """One ticket and its whole history. Change it only through ``weibao.collector.tickets.machine``."""

    id: str
    device: str  # "" for a request that names no device
    rule: str  # the contract rule of a fault, or the kind of a request a person opened
    level: int
    state: TicketState
    opened_at: datetime
    accepted_at: datetime | None = None
    restored_at: datetime | None = None
    reported_at: datetime | None = None
    closed_at: datetime | None = None
    affected: tuple[str, ...] = ()
    episode: str | None = None  # the fault episode (weibao/collector/contract) this ticket stands for
    events: tuple[TicketEvent, ...] = field(default=())
    kind: TicketKind = TicketKind.FAULT
    summary: str = ""  # a request's subject, as its submitter wrote it
    solution_at: datetime | None = None
    dispatched_at: datetime | None = None
    onsite_at: datetime | None = None

    @property
    def reopen_count(self) -> int:
        """How many times the fault came back; notifications use it to tell the rounds apart."""
        return sum(1 for e in self.events if e.kind is Action.REOPEN)

    @property
    def last_activity(self) -> datetime:
        return max(e.at for e in self.events) if self.events else self.opened_at

    @property
    def opened_by(self) -> str:
        """``system`` for what monitoring opened, else the person who submitted it."""
        return self.events[0].actor if self.events else SYSTEM

    @property
    def initial_level(self) -> int:
        if not self.events:
            return self.level
        return self.events[0].to_level or self.level

    @property
    def promotions(self) -> tuple[tuple[datetime, int], ...]:
        """(time, new level) of every promotion, in order: the clocks apply each (contract.md)."""
        return tuple((e.at, e.to_level) for e in self.events
                     if e.kind is Action.PROMOTE and e.to_level is not None)

    @property
    def pauses(self) -> tuple[tuple[datetime, datetime | None, str], ...]:
        """(start, end or None while still paused, reason) of every pause, from the pause / resume events."""
        out: list[tuple[datetime, datetime | None, str]] = []
        for e in self.events:
            if e.kind is Action.PAUSE:
                out.append((e.at, None, e.note))
            elif e.kind is Action.RESUME and out and out[-1][1] is None:
                out[-1] = (out[-1][0], e.at, out[-1][2])
        return tuple(out)

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1][1] is None

    @property
    def auto_close_from(self) -> datetime | None:
        """Where the two weeks without feedback count from: the latest solution. None without a submitted
        solution (a restoration by monitoring alone is not one), and None once the client answered that
        solution without confirming it: the client did give feedback, so the ticket waits for a new solution
        (or the client's confirmation) instead of closing by itself (contract.md, "Closing")."""
        if self.solution_at is None:
            return None
        # by the events' order, not their times: a feedback and the next solution may carry the same time
        for e in reversed(self.events):
            if e.kind is Action.SOLUTION:
                return self.solution_at
            if e.kind is Action.FEEDBACK:
                return None
        return self.solution_at


def level_is_higher(new: int, old: int) -> bool:
    """True when ``new`` is a more serious level than ``old`` (1 is the most serious)."""
    return new < old
