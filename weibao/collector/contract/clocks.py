"""The contract's SLA clocks of a ticket (response, restoration, report, and on-site once an engineer is
dispatched), computed as of ``now``.

What each clock runs from and to (contract.md, "Clocks" and the service table; limits per level from
rules/contract.yaml):

- **response** (响应时间): from the ticket's opening (a fault detected, or a request submitted) to its
  acceptance by an engineer.
- **restoration** (业务恢复时间): from the response to the restoration of service (a workaround counts).
  It starts at the acceptance, but never later than the response deadline: a late acceptance breaches
  the response clock and buys no extra restoration time. So while the ticket is not yet accepted the
  restoration clock is shown as running from the response deadline (``start_provisional`` is True);
  accepting on time can only move its deadline earlier, never later. A restoration that happens before
  any acceptance (a fault that clears by itself) meets the clock at the restoration time.
- **report** (故障处理汇报时间): from the acceptance to the report to the client's maintenance department,
  with the same start as restoration. "same_day" ends at the end of the calendar day (Asia/Shanghai) of
  that start, "next_day" at the end of the day after.
- **on-site** (现场支持到达): from the dispatch of an engineer to the arrival on site; only once dispatched.

Promotion (contract.md): what is done stays done. A clock already met or breached when the ticket is
promoted keeps its result, and no promotion makes a clock breached at a moment before the promotion. A
clock still running at a promotion then ends at the earlier of its deadline so far and the promotion moment
plus the new level's limit ("same day" and "next day" counted from the day of the promotion). A clock that
starts after a promotion runs at the level then in force.

Rules that hold for every clock:

- A clock is met when its event happens strictly before the deadline ("< 5 minutes"); it is breached when
  its event came at or after the deadline, or has not come and ``now`` is at or past the deadline.
- Events later than ``now`` are treated as not yet happened, so replaying history gives the clocks as they
  stood at each moment.
- Paused time (a problem handed over to the department it belongs to: contract.md, "Excluded time") does not
  count: a deadline moves later by the paused time that falls before it. A pause still open (``end`` is
  None) is taken to end at ``now``: the deadline shown is where it would be if the pause ended now.
- "9h working" limits count only working time (calendar); the pauses are removed from it as well.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from weibao.collector.contract.calendar import WorkingCalendar, end_of_day, local
from weibao.collector.contract.intervals import Interval, merge, subtract
from weibao.collector.contract.rules import ClockLimit, ClockName, ClockRules, LimitKind

_CHUNK = timedelta(days=14)
_MAX_CHUNKS = 300  # ~11 years: a deadline further away is a configuration error


@dataclass(frozen=True, slots=True)
class Pause:
    """Time that does not count against the clocks (a problem outside the contract, handed over)."""

    start: datetime
    end: datetime | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Clock:
    """One clock as of ``as_of``: when it started, its deadline, when it was met, whether it is breached."""

    name: ClockName
    level: int
    start: datetime
    start_provisional: bool
    deadline: datetime
    met_at: datetime | None
    breached: bool
    as_of: datetime

    @property
    def met(self) -> bool:
        return self.met_at is not None and not self.breached

    def remaining(self, now: datetime | None = None) -> timedelta:
        """Time left before the deadline (negative once past); zero once the clock was met."""
        if self.met_at is not None:
            return timedelta()
        return self.deadline - (now or self.as_of)

    def due_soon(self, lead: timedelta, now: datetime | None = None) -> bool:
        """True when the clock is still running and its deadline is less than ``lead`` away."""
        now = now or self.as_of
        return self.met_at is None and now < self.deadline and self.deadline - now <= lead


@dataclass(frozen=True, slots=True)
class Clocks:
    response: Clock
    restoration: Clock
    report: Clock
    onsite: Clock | None = None  # only once an engineer was dispatched

    def __iter__(self) -> Iterator[Clock]:
        found = (self.response, self.restoration, self.report, self.onsite)
        return iter(tuple(c for c in found if c is not None))

    def as_dict(self) -> dict[str, dict[str, str | bool | None]]:
        """``{"response": {"deadline", "met_at", "breached"}, ...}`` with ISO 8601 times (the API shape)."""
        return {c.name.value: {"deadline": c.deadline.isoformat(),
                               "met_at": c.met_at.isoformat() if c.met_at else None,
                               "breached": c.breached} for c in self}


def _counted(a: datetime, b: datetime, kind: LimitKind, pauses: list[Interval],
             calendar: WorkingCalendar) -> list[Interval]:
    base = calendar.working_intervals(a, b) if kind == LimitKind.WORKING else [Interval(a, b)]
    return subtract(base, pauses)


def _advance(start: datetime, amount: timedelta, kind: LimitKind, pauses: list[Interval],
             calendar: WorkingCalendar) -> datetime:
    """The moment ``amount`` of counted time (elapsed or working, minus pauses) has passed since start."""
    left = amount
    t = start
    if left <= timedelta():
        return t
    for _ in range(_MAX_CHUNKS):
        for piece in _counted(t, t + _CHUNK, kind, pauses, calendar):
            if left <= piece.duration:
                return local(piece.start + left)
            left -= piece.duration
        t += _CHUNK
    raise ValueError(f"clock of {amount} does not end within {_MAX_CHUNKS * _CHUNK} of {start}")


def deadline_for(limit: ClockLimit, start: datetime, pauses: Sequence[Interval],
                 calendar: WorkingCalendar) -> datetime:
    """The deadline of a clock with ``limit`` that started at ``start``, with ``pauses`` not counting."""
    holes = merge(pauses)
    if limit.kind == LimitKind.DAY_END:
        # paused time moves the end of the day later by as much
        return _advance(start, end_of_day(start, limit.days_after) - start, LimitKind.ELAPSED, holes, calendar)
    return _advance(start, limit.amount, limit.kind, holes, calendar)


def _happened(t: datetime | None, now: datetime) -> datetime | None:
    return local(t) if t is not None and t <= now else None


@dataclass(frozen=True, slots=True)
class _Levels:
    """The level at the opening and each promotion after it (time, new level), in order."""

    initial: int
    promotions: tuple[tuple[datetime, int], ...]

    def at(self, t: datetime) -> int:
        level = self.initial
        for when, new in self.promotions:
            if when <= t:
                level = new
        return level


def _clock(name: ClockName, levels: _Levels, start: datetime, provisional: bool, met_at: datetime | None,
           limits: ClockRules, pauses: list[Interval], calendar: WorkingCalendar, now: datetime) -> Clock:
    """One clock from ``start`` at the level then in force, each later promotion applied as contract.md says."""
    level = levels.at(start)
    deadline = deadline_for(limits.limit(name, level), start, pauses, calendar)
    for when, new in levels.promotions:
        if when <= start or when > now:
            continue
        done = met_at is not None and met_at <= when
        if done or deadline <= when:  # met or breached before the promotion: stays as it was
            continue
        level = new
        deadline = min(deadline, deadline_for(limits.limit(name, new), when, pauses, calendar))
    breached = met_at >= deadline if met_at is not None else now >= deadline
    return Clock(name=name, level=level, start=start, start_provisional=provisional, deadline=deadline,
                 met_at=met_at, breached=breached, as_of=now)


def compute_clocks(level: int, fault_start: datetime, accepted_at: datetime | None,
                   restored_at: datetime | None, reported_at: datetime | None, pauses: Sequence[Pause],
                   calendar: WorkingCalendar, now: datetime, *, limits: ClockRules,
                   promotions: Sequence[tuple[datetime, int]] = (), dispatched_at: datetime | None = None,
                   onsite_at: datetime | None = None) -> Clocks:
    """The clocks of a ticket opened at ``fault_start`` at ``level`` (1, 2 or 3) and promoted at each of
    ``promotions`` (time, new level), as of ``now`` (see the module docstring)."""
    for lvl in (level, *(new for _, new in promotions)):
        if lvl not in (1, 2, 3):
            raise ValueError(f"fault level must be 1, 2 or 3, not {lvl!r}")
    now = local(now)
    start = local(fault_start)
    levels = _Levels(level, tuple(sorted(((local(w), n) for w, n in promotions), key=lambda p: p[0])))
    accepted = _happened(accepted_at, now)
    restored = _happened(restored_at, now)
    reported = _happened(reported_at, now)
    holes = merge(Interval(local(p.start), max(local(p.start), local(p.end) if p.end and p.end <= now
                                               else now))
                  for p in pauses if p.start <= now)
    response = _clock(ClockName.RESPONSE, levels, start, False, accepted, limits, holes, calendar, now)
    anchor = min(accepted, response.deadline) if accepted is not None else response.deadline
    provisional = accepted is None
    restoration = _clock(ClockName.RESTORATION, levels, anchor, provisional, restored, limits, holes,
                         calendar, now)
    report = _clock(ClockName.REPORT, levels, anchor, provisional, reported, limits, holes, calendar, now)
    dispatched = _happened(dispatched_at, now)
    onsite = None
    if dispatched is not None:
        onsite = _clock(ClockName.ONSITE, levels, dispatched, False, _happened(onsite_at, now), limits, holes,
                        calendar, now)
    return Clocks(response=response, restoration=restoration, report=report, onsite=onsite)
