"""The level of a fault episode (3, 2 or 1) and the rule row that set it, as of ``now``.

A fault starts at level 3 and is promoted as soon as any level-2 or level-1 condition of its category
holds, also while it is still going on (a working-hours business outage is level 2 at start + 1 h of
working time). How each row is measured:

- ``single``: the down time of one outage of the episode (a fault that returned within the re-open window
  keeps its episode and ticket, but each return after a restoration is another outage: the contract's
  "一次"), counting only the row's hours (working / non_working / any). For a
  working-hours row, ``working_single`` (rules/contract.yaml ``evaluation.working_hours_single``) decides an
  outage that crosses 17:30 or 08:30: only its in-hours part counts (the default), or all of it.
- ``day`` / ``month``: the device's own down time on the calendar day / month (Asia/Shanghai) in the
  row's hours, over all its episodes up to this episode's end (or ``now``), this one included. An
  episode spanning midnight counts its time in both days. A cumulative row promotes the episode only if
  the episode itself has down time in that day/month and in those hours: a short working-hours outage
  is not promoted by the previous night's outages. When the total had already reached the threshold
  before this episode, the episode is promoted from its first counted moment.
- During a protection period (``calendar.protection_during``) thresholds are the period's overrides for
  the row, else the row's durations times its ``threshold_factor``.

``since`` tells when the winning condition first held: the promotion time a ticket records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from weibao.collector.contract.calendar import (
    ProtectionPeriod,
    WorkingCalendar,
    day_start,
    local,
    month_start,
    next_month_start,
)
from weibao.collector.contract.episodes import Cumulative, Episode
from weibao.collector.contract.intervals import Interval, clip_all, merge, subtract
from weibao.collector.contract.rules import CategoryRules, Hours, RuleRow, Scope, WorkingSingle


@dataclass(frozen=True, slots=True)
class LevelDecision:
    """The episode's level, the row that set it (None at level 3) and when that row first held."""

    level: int
    rule: RuleRow | None
    since: datetime | None
    protection: ProtectionPeriod | None = None


def thresholds(row: RuleRow, protection: ProtectionPeriod | None) -> tuple[timedelta, timedelta]:
    """(level-2, level-1) durations of ``row``, made stricter by ``protection`` if given."""
    if protection is None:
        return row.level_2, row.level_1
    factor = protection.threshold_factor
    l2, l1 = row.level_2 * factor, row.level_1 * factor
    override = protection.overrides.get(row.id)
    if override is not None:
        l2 = override.level_2 if override.level_2 is not None else l2
        l1 = override.level_1 if override.level_1 is not None else l1
    return l2, l1


def counted(intervals: Iterable[Interval], hours: Hours, calendar: WorkingCalendar) -> list[Interval]:
    """The parts of ``intervals`` inside the row's hours."""
    ivs = merge(intervals)
    if hours == Hours.ANY:
        return ivs
    working = [w for iv in ivs for w in calendar.working_intervals(iv.start, iv.end)]
    return working if hours == Hours.WORKING else subtract(ivs, working)


def outages(down: list[Interval], restorations: Iterable[datetime]) -> list[list[Interval]]:
    """An episode's down time cut into its outages ("一次", once): a fault that returned within the re-open
    window after a restoration keeps its episode and ticket, but what follows the restoration is another
    outage for the single rows."""
    cuts = sorted(restorations)
    out: list[list[Interval]] = []
    current: list[Interval] = []
    i = 0
    for iv in sorted(down, key=lambda iv: iv.start):
        while i < len(cuts) and cuts[i] <= iv.start:
            if current:
                out.append(current)
                current = []
            i += 1
        current.append(iv)
    if current:
        out.append(current)
    return out


def _crossing(pieces: list[Interval], threshold: timedelta) -> datetime | None:
    acc = timedelta()
    for p in pieces:
        if acc + p.duration >= threshold:
            return p.start + (threshold - acc)
        acc += p.duration
    return None


def _windows(scope: Scope, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    d: date = local(start).date()
    last = local(end).date()
    while d <= last:
        if scope == Scope.DAY:
            a, b = day_start(d), day_start(d + timedelta(days=1))
        else:
            a, b = month_start(d), next_month_start(d)
        out.append((a, b))
        d = b.date()
    return out


def _row_since(row: RuleRow, threshold: timedelta, episode: Episode, history: list[Interval],
               end: datetime, calendar: WorkingCalendar, working_single: WorkingSingle) -> datetime | None:
    own = clip_all(episode.down, episode.start, end)
    if not own:
        return None
    if row.scope == Scope.SINGLE:
        found: datetime | None = None
        for outage in outages(own, episode.restorations):
            pieces = counted(outage, row.hours, calendar)
            if row.hours == Hours.WORKING and working_single == WorkingSingle.WHOLE_OUTAGE and pieces:
                pieces = merge(outage)  # some of it was in working hours: all of it counts
            t = _crossing(pieces, threshold)
            if t is not None and (found is None or t < found):
                found = t
        return found
    best: datetime | None = None
    for a, b in _windows(row.scope, own[0].start, own[-1].end):
        mine = counted(clip_all(own, a, b), row.hours, calendar)
        if not mine:
            continue
        t = _crossing(counted(clip_all(history, a, min(b, end)), row.hours, calendar), threshold)
        if t is not None:
            t = max(t, mine[0].start)
            best = t if best is None else min(best, t)
    return best


def level_of(episode: Episode, cumulative: Cumulative, category_rules: CategoryRules,
             calendar: WorkingCalendar, now: datetime, *,
             working_single: WorkingSingle = WorkingSingle.IN_HOURS_PART) -> LevelDecision:
    """The level of ``episode`` as of ``now`` (see the module docstring).

    ``cumulative`` is the device's own down time for the episode's condition (``ConditionTracker
    .cumulative``); it may or may not already contain the episode. Rows of other conditions or
    thresholds than the episode's are ignored.
    """
    now = local(now)
    end = min(now, episode.end) if episode.end is not None else now
    history = merge([*cumulative.intervals, *episode.down])
    protection = calendar.protection_during(episode.start, end)
    rows = [r for r in category_rules.rows if r.key == episode.key]
    for level in (1, 2):
        found: tuple[datetime, RuleRow] | None = None
        for row in rows:
            l2, l1 = thresholds(row, protection)
            t = _row_since(row, l1 if level == 1 else l2, episode, history, end, calendar, working_single)
            if t is not None and t <= end and (found is None or t < found[0]):
                found = (t, row)
        if found is not None:
            return LevelDecision(level, found[1], found[0], protection)
    return LevelDecision(3, None, None, protection)
