"""Evaluator signals -> ticket actions: one ticket per fault episode, or per root cause.

``FaultSync.sync(episode)`` brings the ticket of one episode in line with it, whatever happened before,
so the same call serves live signals, the periodic sweep and restart recovery (idempotent: a ticket is
found by its episode id, which is device + condition + start):

- a new episode opens a ticket at level 3 at the episode's start (or re-opens the device's restored
  ticket of the same rule within the re-open window), and is promoted at once if ``level_of`` says so;
- an episode caused by its upstream (``affected_by``) adds the device to the ticket of the root's episode
  (``attach_affected``), whatever state that ticket is in by now (an agent's backlog may tell of it after the
  root's ticket was restored or closed: it is added, dated when the device went down); when the upstream
  is back while the device stays down, the device's fault is its own from that moment (``Evaluator
  .ownership``): its own ticket opens then. A ticket the device had opened before its upstream's samples
  came (the upstream was silent) is folded into the root's (restored and closed with a note naming it);
- loss and latency episodes of a device that is down are the same fault (a down device loses every
  probe): no ticket of their own while it is down (one already open is folded into the down ticket, at the
  level it had reached by then); the down ticket is at least at the level the condition reached by the
  outage's end; what is still bad once the device is back is a ticket of its own from that moment;
- a restored episode restores its ticket; an episode that came back (``reopen_count`` above the
  ticket's) re-opens it, or opens a new ticket if it was closed meanwhile;
- levels only rise: the promotion is recorded at the time the winning row first held, judged as of the
  device's own newest sample.

What monitoring learns is dated by its own (event) time, also when it is learnt late: a restoration, a
promotion, an affected device. The machine keeps what people did (weibao/collector/tickets/machine.py).

Monitoring gaps (no data is not down) open one ticket per AGENT (rule ``agent_gap``, device = the agent's
name) listing the silent devices as affected; it is restored when every one of them sends data again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from weibao.collector.contract import (
    ContractRules,
    Cumulative,
    Episode,
    Evaluator,
    LevelDecision,
    Signal,
    SignalKind,
    WorkingCalendar,
    level_of,
)
from weibao.collector.contract.intervals import clip_all
from weibao.collector.contract.rules import CategoryRules, Condition, TrackKey
from weibao.collector.engine.setup import DeviceBook
from weibao.collector.tickets import machine
from weibao.collector.tickets.machine import later
from weibao.collector.tickets.model import LEVELS, SYSTEM, IllegalTransition, Ticket, TicketError, TicketState
from weibao.collector.tickets.ops import ACTIVE, NOT_CLOSED, TicketOps

log = logging.getLogger(__name__)

REACH = (Condition.DOWN, Condition.CUT_OFF)
REACH_RULES = (Condition.DOWN.value, Condition.CUT_OFF.value)
QUALITY = (Condition.LOSS, Condition.LATENCY, Condition.LOSS_OR_LATENCY)
GAP_RULE = "agent_gap"
FOLD_NOTE = "same fault as ticket"
_TICK = timedelta(milliseconds=1)
_STANDING = 200  # a device's tickets not closed, read at once when an episode has no ticket yet


def rule_name(key: TrackKey, category: CategoryRules) -> str:
    """The ticket's rule for a tracked condition: ``down``, ``cut_off``, ``loss_or_latency``, ``loss``,
    ``latency`` (with the thresholds only when the category tracks that condition at several)."""
    same = [k for k in category.tracked() if k.condition == key.condition]
    if len(same) > 1 and key.threshold is not None:
        return f"{key.condition.value}{key.suffix}"
    return key.condition.value


def quality_rule(rule: str) -> bool:
    """Whether a ticket's rule is one of loss / latency (the same fault as a device being down)."""
    return rule.split("@")[0] in {c.value for c in QUALITY}


class FaultSync:
    """Applies evaluator signals and episodes to tickets (see the module docstring)."""

    def __init__(self, ops: TicketOps, rules: ContractRules, calendar: WorkingCalendar) -> None:
        self.ops = ops
        self.rules = rules
        self.calendar = calendar
        self.window = rules.evaluation.reopen_window
        self.gaps: dict[str, set[str]] = {}  # agent -> its devices without data
        # affected episodes still followed: (device, key) -> episode id -> how many owners were acted on
        self._owners: dict[tuple[str, TrackKey], dict[str, int]] = {}

    # -- signals -------------------------------------------------------------------------------------------
    def handle(self, signals: Iterable[Signal], ev: Evaluator, book: DeviceBook, now: datetime) -> None:
        sigs = list(signals)
        # a gap that began and ended within one call was found only when data came back (the sweep did
        # not see it live, e.g. a backfill): it is recorded as a gap ticket opened and restored at once
        # only `up` speaks for the agent: it is sent every round, while a device that is down sends no
        # latency at all (a gap of that tracker is not a gap in monitoring)
        sigs = [s for s in sigs if s.key.condition in REACH
                or s.kind not in (SignalKind.GAP_STARTED, SignalKind.GAP_ENDED)]
        ends = {(s.device, s.key): s.at for s in sigs if s.kind is SignalKind.GAP_ENDED}
        silent: dict[str, dict[str, datetime]] = {}  # agent -> device -> gap start, attached at once
        past: dict[str, dict[str, tuple[datetime, datetime]]] = {}
        for sig in sigs:
            try:
                agent = book.agents.get(sig.device)
                if sig.kind is SignalKind.GAP_STARTED and agent is not None:
                    end = ends.get((sig.device, sig.key))
                    if end is None:
                        silent.setdefault(agent, {}).setdefault(sig.device, sig.at)
                    elif sig.device not in self.gaps.get(agent, set()):
                        past.setdefault(agent, {}).setdefault(sig.device, (sig.at, end))
                elif sig.kind is SignalKind.GAP_ENDED:
                    self.gap_ended(sig.device, sig.at, book)
                elif sig.episode is not None:
                    self.sync(sig.episode, ev, now, allow_ended=True)
            except TicketError as exc:  # one ticket that cannot change must not stop the others
                log.warning("%s %s at %s: %s", sig.kind.value, sig.device, sig.at.isoformat(), exc)
        for agent, devices in silent.items():
            try:
                self.gap_started(agent, devices)
            except TicketError as exc:
                log.warning("monitoring gap of %s: %s", agent, exc)
        for agent, spans in past.items():
            try:
                self.past_gap(agent, spans)
            except TicketError as exc:
                log.warning("monitoring gap of %s: %s", agent, exc)

    # -- episodes ------------------------------------------------------------------------------------------
    def _category(self, ev: Evaluator, device: str) -> CategoryRules:
        return self.rules.categories[ev.devices[device].category]

    def _began_within(self, ev: Evaluator, ep: Episode, now: datetime) -> list[Episode]:
        """The reachability episodes within which a loss or latency episode began (give or take the upstream
        tolerance)."""
        slack = self.rules.evaluation.upstream_tolerance
        return [down for tracker in ev.trackers(ep.device) if tracker.key.condition in REACH
                for down in tracker.episodes(now)
                if down.start - slack <= ep.start and (down.end is None or ep.start <= down.end)]

    def _within_down(self, ev: Evaluator, ep: Episode, now: datetime) -> bool:
        """Whether a loss or latency episode is part of the device being down: it began (give or take the
        upstream tolerance) within a reachability episode and has not outlasted it."""
        slack = self.rules.evaluation.upstream_tolerance
        return any(down.end is None or (ep.end is not None and ep.end <= down.end + slack)
                   for down in self._began_within(ev, ep, now))

    def _bad_after(self, ev: Evaluator, ep: Episode, t: datetime) -> bool:
        """Whether the episode's own samples show it in fault after ``t`` (False while they do not reach
        past ``t``): a question the samples answer the same whenever it is asked."""
        newest = ev.tracker(ep.device, ep.key).last_ts
        return newest is not None and newest > t and any(iv.end > t for iv in ep.down)

    def _reach_overlapping(self, ev: Evaluator, ep: Episode, now: datetime) -> list[Episode]:
        """The device's own reachability episodes (not its upstream's outages) that ``ep`` overlaps."""
        upto = ep.end if ep.end is not None else ep.as_of
        return [down for tracker in ev.trackers(ep.device) if tracker.key.condition in REACH
                for down in tracker.episodes(now)
                if down.start <= upto and (down.end is None or down.end > ep.start)]

    def _outlasted(self, ev: Evaluator, ep: Episode, now: datetime) -> datetime | None:
        """When a loss or latency episode that was part of the device's reachability fault became a fault of
        its own: the end of the last reachability episode it overlapped, if its own samples show it bad after
        that end. None while that fault lasts, or while what follows its end is not known yet (its samples
        do not reach past it): decided from the samples alone, whenever it is asked."""
        downs = self._reach_overlapping(ev, ep, now)
        if not downs or any(down.end is None for down in downs):
            return None
        end = max(down.end for down in downs if down.end is not None)
        return end if self._bad_after(ev, ep, end) else None

    def _follow_outages(self, ep: Episode, ev: Evaluator, now: datetime, ticket: Ticket | None) -> Ticket | None:
        """A loss or latency episode that runs through outages of its device, as lived: a ticket of its own
        for each stretch it is bad while the device is up (from the end of an outage, once its samples show
        it still bad then), folded into the next outage's ticket at that outage's start. ``ticket``: the
        episode's newest ticket, None or folded. Returns the ticket of the stretch running now, or None
        (the device is down, or what follows an outage is not known yet). Decided from the samples and the
        outages' tickets, so the same whether the outages' samples came before or after these."""
        downs = sorted(self._reach_overlapping(ev, ep, now), key=lambda d: d.start)
        # a folded ticket's stretch ended at its fold: the next one begins after the outage that took it
        after = ep.start if ticket is None else (ticket.restored_at or ticket.last_activity)
        for down in downs:
            if ticket is not None and not _folded(ticket):
                # a stretch of its own since ticket.opened_at: a later outage of the device carries it on
                if down.start <= ticket.opened_at or down.affected_by is not None:
                    continue
                into = self.ops.by_episode(down.id)
                if into is None or into.device != ep.device:
                    return ticket  # that outage's ticket folds it when it opens (_absorb_quality)
                folded = self._fold(ticket, into, down.start, ev, down.start)
                if folded is None:
                    return ticket
                ticket, after = folded, down.start
            if down.end is None:
                return None  # down now: the outage's ticket carries the fault
            if down.end < after:
                continue
            if not self._bad_after(ev, ep, down.end):
                return None  # not bad once the device was back, or not known yet
            rule = rule_name(ep.key, self._category(ev, ep.device))
            note = (f"still {ep.key.condition.value} after {ticket.id} was folded" if ticket is not None
                    else f"still {ep.key.condition.value} after the device was back")
            ticket = self.ops.open(device=ep.device, rule=rule, at=later(ticket, down.end) if ticket else down.end,
                                   episode=ep.id, note=note)
        return ticket if ticket is not None and not _folded(ticket) else None

    def _carry_quality(self, ticket: Ticket, down: Episode, ev: Evaluator, now: datetime) -> Ticket:
        """A loss or latency fault of the device that overlaps its reachability episode ``down`` is the same
        fault (a device that is down loses every probe): the ticket standing for ``down`` is at least at
        the level that condition reached by the end of ``down``, dated when it held (and never before the
        ticket's opening). Decided from the samples alone, so the same in any arrival order."""
        if ticket.state is TicketState.CLOSED or ticket.level == 1:
            return ticket
        as_of = min(now, down.end) if down.end is not None else now
        for tracker in ev.trackers(down.device):
            if tracker.key.condition not in QUALITY:
                continue
            for q in tracker.episodes(now):
                if q.start <= as_of and (q.end is None or q.end > down.start) \
                        and self.promotion_due(q, ev, as_of):
                    ticket = self.promote(ticket, q, ev, as_of)
        return ticket

    def _quality_into_reach(self, ep: Episode, ev: Evaluator, now: datetime) -> None:
        """A loss or latency episode raises the level of the device's reachability tickets it overlaps."""
        if not self.promotion_due(ep, ev, now):
            return
        for down in self._reach_overlapping(ev, ep, now):
            if down.affected_by is not None:
                continue  # its upstream's fault: listed on that ticket, whose level is the upstream's own
            ticket = self.ops.by_episode(down.id)
            if ticket is not None and ticket.device == ep.device:
                self._carry_quality(ticket, down, ev, now)

    def sync(self, ep: Episode, ev: Evaluator, now: datetime, *, allow_ended: bool,
             known: Mapping[str, Ticket] | None = None) -> Ticket | None:
        """Make the tickets match episode ``ep``; returns the ticket standing for it (None if none).
        ``known``: the newest ticket of each episode that has one, read (``TicketOps.by_episodes``) for
        episodes including ``ep`` since the last ticket write, in place of reading ``ep``'s."""
        if ep.device not in ev.devices:
            return None
        cond = ep.key.condition
        ticket = known.get(ep.id) if known is not None else self.ops.by_episode(ep.id)
        if ep.affected_by is not None and cond in REACH:
            return self._sync_affected(ep, ev, ticket, now)
        if cond in QUALITY:
            self._quality_into_reach(ep, ev, now)
            if self._within_down(ev, ep, now):
                down = self.ops.active(ep.device, REACH_RULES)
                if ticket is not None and ticket.state in ACTIVE and down is not None:
                    self._fold(ticket, down, ep.start, ev, ep.start)
                return down
            if (ticket is None and self._began_within(ev, ep, now)) or (ticket is not None and _folded(ticket)):
                # it began while the device was down (or was folded into an outage) and outlasted that: a
                # fault of its own from the moment the device was back, once its samples show it still bad
                ticket = self._follow_outages(ep, ev, now, ticket)
                if ticket is None:
                    return None
        # the device's tickets that are not closed, read once for _adopt and _open (nothing is written
        # between them)
        standing: list[Ticket] | None = None
        if ticket is None and ep.is_open:
            standing = self._standing(ep.device)
            ticket = self._adopt(ep, ev, standing)
        if ticket is None:
            if not ep.is_open and not allow_ended:
                return None
            ticket = self._open(ep, ev, standing if standing is not None else self._standing(ep.device))
        elif ep.is_open and ep.reopen_count > ticket.reopen_count:
            ticket = self._reopen(ticket, ep, ev)
        elif ticket.state is TicketState.CLOSED and not _folded(ticket) and (ep.is_open or allow_ended):
            # closed by people while the fault went on: what the samples show after the close is a new ticket
            closed = ticket.closed_at or ticket.last_activity
            if not self._bad_after(ev, ep, closed):
                return ticket
            rule = rule_name(ep.key, self._category(ev, ep.device))
            ticket = self.ops.open(device=ep.device, rule=rule, at=later(ticket, closed), episode=ep.id,
                                   note=f"still {ep.key.condition.value} after {ticket.id} was closed")
        elif (ep.is_open or allow_ended) and _folded(ticket):
            # it was part of another fault; once that one has ended, what remains is a fault of its own
            since = self._outlasted(ev, ep, now)
            if since is None:
                return None
            rule = rule_name(ep.key, self._category(ev, ep.device))
            ticket = self.ops.open(device=ep.device, rule=rule, at=later(ticket, since), episode=ep.id,
                                   note=f"still {ep.key.condition.value} after {ticket.id} was folded")
        ticket = self.promote(ticket, ep, ev, now)  # before a restoration: the promotion came first
        if cond in REACH:
            ticket = self._carry_quality(ticket, ep, ev, now)
        return self._restored(ticket, ep)

    def _restored(self, ticket: Ticket, ep: Episode) -> Ticket:
        """Restore the ticket at the episode's end (its own time, even if learnt after people acted)."""
        if not ep.is_open and ep.end is not None and ticket.state in ACTIVE and ep.end >= ticket.opened_at:
            end = ep.end
            ticket = self.ops.change(ticket.id, lambda t: machine.restore(
                t, at=end, note="fault cleared", recorded=_wall())) or ticket
        return ticket

    # -- affected devices ----------------------------------------------------------------------------------
    def _sync_affected(self, ep: Episode, ev: Evaluator, ticket: Ticket | None, now: datetime) -> Ticket | None:
        """An episode that began in its upstream's outage: listed on the owner's ticket for as long as it
        belongs to that outage, then a fault of its own (or of another upstream) from the moment the owner
        was back (``Evaluator.ownership``)."""
        tracker = ev.tracker(ep.device, ep.key)
        raw = tracker.raw_episode(ep.id)
        if raw is None:
            return None
        owners = ev.ownership(tracker, raw)
        own_since = next((since for since, who, _ in owners if who == ep.device), None)
        result: Ticket | None = None
        acted = 0
        for n, (since, who, episode) in enumerate(owners):
            if who == ep.device:
                result = self._own_from(ep, ev, since, now)
                acted = n + 1
                break
            root = self.ops.by_episode(episode)
            if root is None:
                break  # its owner's ticket is not there yet: a later pass attaches it
            if ep.device not in root.affected:
                root = self._attach(root, ep.device, max(since, root.opened_at),
                                    f"{ep.device} unreachable from {since.isoformat()}: upstream {who} is down")
            if (n == 0 and ticket is not None and ticket.state in ACTIVE and ticket.device == ep.device
                    and (own_since is None or ticket.opened_at < own_since)):
                self._fold(ticket, root, ep.start)  # opened at its start while its upstream was silent
            result = root
            acted = n + 1
        self._owners.setdefault((ep.device, ep.key), {})[ep.id] = acted
        return result

    def _attach(self, root: Ticket, device: str, at: datetime, note: str) -> Ticket:
        return self.ops.change(root.id, lambda t: machine.attach_affected(
            t, devices=[device], at=at, recorded=_wall(), note=note)) or root

    def _own_from(self, ep: Episode, ev: Evaluator, since: datetime, now: datetime) -> Ticket:
        """The device's own ticket for the part of ``ep`` from ``since`` on (episode id ``ep.id``)."""
        own = self.ops.by_episode(ep.id)
        if own is None or _folded(own):
            rule = rule_name(ep.key, self._category(ev, ep.device))
            own = self.ops.open(device=ep.device, rule=rule, at=since, episode=ep.id,
                                note=f"{ep.key.condition.value} since {since.isoformat()}: its upstream was back, "
                                     "it was not")
        mine = replace(ep, start=since, down=tuple(clip_all(ep.down, since, ep.as_of)), affected_by=None,
                       affected_episode=None)
        own = self.promote(own, mine, ev, now)
        return self._restored(own, mine)

    def follow_owners(self, ev: Evaluator, devices: Iterable[str], now: datetime) -> None:
        """Act on affected episodes whose owner changed since they were last synced: an upstream was back
        while they stayed down (learnt from either device's samples, in whatever order they came)."""
        wanted = set(devices)
        for (device, key), episodes in list(self._owners.items()):
            if device not in wanted and not wanted & set(ev.upstream_chain(device)):
                continue
            tracker = ev.tracker(device, key)
            for ep_id, acted in list(episodes.items()):
                raw = tracker.raw_episode(ep_id)
                if raw is None:
                    del episodes[ep_id]
                    continue
                if len(ev.ownership(tracker, raw)) > acted:
                    snap = tracker.episode(ep_id, now)
                    if snap is not None:
                        try:
                            self.sync(snap, ev, now, allow_ended=True)
                        except TicketError as exc:
                            log.warning("affected episode %s: %s", ep_id, exc)
            if not episodes:
                del self._owners[(device, key)]

    def _standing(self, device: str) -> list[Ticket]:
        """The device's tickets that are not closed, newest first."""
        return self.ops.store.find(state=list(NOT_CLOSED), device=device, limit=_STANDING)

    def _adopt(self, ep: Episode, ev: Evaluator, standing: list[Ticket]) -> Ticket | None:
        """The device's ticket of the same rule that this open episode continues, under another episode id
        (a replay from 5-minute rollups rounds the start): the active one, or one restored by hand
        within the re-open window of the episode's start (``standing``: the device's tickets not closed)."""
        rule = rule_name(ep.key, self._category(ev, ep.device))
        ticket = _newest(standing, rule, ACTIVE)
        if ticket is None:
            ticket = _newest(standing, rule, (TicketState.RESTORED,))
            if ticket is None or abs(ticket.opened_at - ep.start) > self.window:
                return None
        adopted = _with_episode(ticket, ep.id)
        self.ops.save_copy(adopted)
        log.info("%s continues as episode %s", ticket.id, ep.id)
        return adopted

    def _open(self, ep: Episode, ev: Evaluator, standing: list[Ticket]) -> Ticket:
        rule = rule_name(ep.key, self._category(ev, ep.device))
        prior = _newest(standing, rule, (TicketState.RESTORED,))
        if prior is not None and machine.reopen_due(prior, ep.start, window=self.window):
            reopened = self._reopen(prior, ep, ev)
            self.ops.save_copy(_with_episode(reopened, ep.id))
            return _with_episode(reopened, ep.id)
        note = f"{ep.key.condition.value} since {ep.start.isoformat()}"
        ticket = self.ops.open(device=ep.device, rule=rule, at=ep.start, episode=ep.id, note=note)
        if ep.key.condition in REACH:
            self._absorb_quality(ticket, ep, ev, standing)
        return ticket

    def _absorb_quality(self, ticket: Ticket, ep: Episode, ev: Evaluator, standing: list[Ticket]) -> None:
        """The device went down while a loss or latency ticket of its own was active: one fault, carried on
        by the reachability ticket from here. The quality ticket first takes the level its condition had
        reached by then (as it would have, had its samples come before these), then is folded."""
        for other in standing:
            if other.state in ACTIVE and quality_rule(other.rule):
                self._fold(other, ticket, ep.start, ev, ep.start)

    def _reopen(self, ticket: Ticket, ep: Episode, ev: Evaluator) -> Ticket:
        at = ep.as_of if ep.reopen_count else ep.start
        if ticket.state is TicketState.RESTORED:
            try:
                done = self.ops.change(ticket.id, lambda t: machine.reopen(
                    t, at=later(t, at), window=self.window, note="fault returned"))
                if done is not None:
                    if ep.key.condition in REACH:
                        self._absorb_quality(done, replace(ep, start=at), ev, self._standing(ep.device))
                    return done
            except IllegalTransition as exc:
                log.info("%s: %s; opening a new ticket", ticket.id, exc.reason)
        if ticket.state is TicketState.RESTORED or ticket.state is TicketState.CLOSED:
            rule = rule_name(ep.key, self._category(ev, ep.device))
            return self.ops.open(device=ep.device, rule=rule, at=later(ticket, at), episode=ep.id,
                                 note=f"fault returned after ticket {ticket.id}")
        return ticket

    def _fold(self, ticket: Ticket, into: Ticket, at: datetime, ev: Evaluator | None = None,
              now: datetime | None = None) -> Ticket | None:
        """One fault, one ticket: close ``ticket`` with a note pointing at ``into``. Given the evaluator, the
        ticket first takes the level its own episode had reached by ``now`` (the fold's moment)."""
        if ev is not None and now is not None and ticket.episode is not None:
            own = next((e for tracker in ev.trackers(ticket.device) if tracker.key.condition in QUALITY
                        if (e := tracker.episode(ticket.episode, now)) is not None), None)
            if own is not None:
                ticket = self.promote(ticket, own, ev, now)
        note = f"{FOLD_NOTE} {into.id} ({into.device} {into.rule})"
        self.ops.change(ticket.id, lambda t: machine.restore(t, at=later(t, at), note=note), notify=False)
        return self.ops.change(ticket.id, lambda t: machine.close(t, at=t.last_activity, actor=SYSTEM, note=note))

    def promote(self, ticket: Ticket, ep: Episode, ev: Evaluator, now: datetime) -> Ticket:
        """Raise the ticket's level when a level-2 or level-1 row of its category holds (never lower it).

        Each level is recorded at the moment its row first held, so a fault learnt of late (a spool
        arriving in one batch) still shows level 2 from 10:00 and level 1 from 11:00, in that order.
        """
        if ticket.state is TicketState.CLOSED or ticket.level == 1:
            return ticket
        if ticket.state is TicketState.RESTORED and ticket.restored_at is not None:
            # service was restored then (by monitoring, or by an engineer's workaround while the device itself
            # stays down): what the fault's samples show after that does not raise its level
            now = min(now, ticket.restored_at)
        decision, cumulative, category, now = self._decision(ep, ev, now)
        steps: list[LevelDecision] = []
        single = self.rules.evaluation.working_single
        while decision.rule is not None and decision.level < ticket.level:
            steps.insert(0, decision)
            if decision.since is None or decision.level == 2:
                break
            decision = level_of(ep, cumulative, category, self.calendar, decision.since - _TICK,
                                working_single=single)
            if decision.level <= steps[0].level:
                break
        for step in steps:
            ticket = self._promote_to(ticket, step, now)
        return ticket

    def promotion_due(self, ep: Episode, ev: Evaluator, now: datetime) -> bool:
        """Whether ``promote`` could raise any ticket of ``ep`` as of ``now``, decided in memory: when a row
        above level 3 does not hold, ``promote`` leaves every ticket as it is (no ticket needs reading)."""
        decision = self._decision(ep, ev, now)[0]
        return decision.rule is not None and decision.level < max(LEVELS)

    def _decision(self, ep: Episode, ev: Evaluator,
                  now: datetime) -> tuple[LevelDecision, Cumulative, CategoryRules, datetime]:
        """``level_of`` the episode as of the device's own newest sample (what comes after it is not known
        yet), with what it was computed from."""
        tracker = ev.tracker(ep.device, ep.key)
        newest = tracker.last_ts
        now = min(now, newest) if newest is not None else now
        cumulative = tracker.cumulative(now)
        category = self._category(ev, ep.device)
        decision = level_of(ep, cumulative, category, self.calendar, now,
                            working_single=self.rules.evaluation.working_single)
        return decision, cumulative, category, now

    def _promote_to(self, ticket: Ticket, decision: LevelDecision, now: datetime) -> Ticket:
        row = decision.rule
        assert row is not None
        since = decision.since or now
        note = f"{row.id}: {row.text}".rstrip(": ") + f" (held from {since.isoformat()})"
        level = decision.level
        try:
            return self.ops.change(ticket.id, lambda t: machine.promote(
                t, level=level, at=max(since, t.opened_at), note=note, recorded=_wall())) or ticket
        except IllegalTransition as exc:  # someone promoted it meanwhile
            log.debug("%s: %s", ticket.id, exc.reason)
            return ticket

    # -- monitoring gaps -----------------------------------------------------------------------------------
    def gap_started(self, agent: str, devices: dict[str, datetime]) -> None:
        """``devices`` of ``agent`` went silent (device -> when): one gap ticket for the agent lists them."""
        known = self.gaps.setdefault(agent, set())
        fresh = {d: t for d, t in devices.items() if d not in known}
        if not fresh:
            return
        known.update(fresh)
        at = min(fresh.values())
        names = sorted(fresh)
        ticket = self.ops.active(agent, [GAP_RULE])
        if ticket is None:
            self.ops.open(device=agent, rule=GAP_RULE, at=at, episode=f"{agent}/{GAP_RULE}/{at.isoformat()}",
                          affected=names, note=f"monitoring gap: no data from {len(names)} device(s) since "
                                               f"{at.isoformat()}")
            return
        new = [d for d in names if d not in ticket.affected]
        if new:
            self.ops.change(ticket.id, lambda t: machine.attach_affected(
                t, devices=new, at=later(t, at), note=f"no data from {len(new)} more device(s)"))

    def past_gap(self, agent: str, spans: dict[str, tuple[datetime, datetime]]) -> None:
        """Gaps found after the fact (device -> (start, end)): one ticket of the agent, opened and restored."""
        start = min(a for a, _ in spans.values())
        end = max(b for _, b in spans.values())
        names = sorted(spans)
        ticket = self.ops.active(agent, [GAP_RULE], states=NOT_CLOSED)
        if ticket is not None and ticket.opened_at <= end and (ticket.restored_at is None
                                                               or ticket.restored_at >= start):
            new = [d for d in names if d not in ticket.affected]
            if new and ticket.state in ACTIVE:
                self.ops.change(ticket.id, lambda t: machine.attach_affected(
                    t, devices=new, at=later(t, start), note=f"no data from {len(new)} more device(s)"))
            if ticket.state in ACTIVE and not self.gaps.get(agent):
                # the open ticket this gap belongs to has no silent device left (its devices were
                # forgotten by a restart or rebuild): it ends with this gap, not at some later sweep
                self.close_gap(agent, end)
            return
        opened = self.ops.open(device=agent, rule=GAP_RULE, at=start, affected=names,
                               episode=f"{agent}/{GAP_RULE}/{start.isoformat()}",
                               note=f"monitoring gap: no data from {len(names)} device(s) "
                                    f"from {start.isoformat()} to {end.isoformat()}")
        self.ops.change(opened.id, lambda t: machine.restore(t, at=later(t, end), note="data flows again"))

    def gap_ended(self, device: str, at: datetime, book: DeviceBook) -> None:
        agent = book.agents.get(device)
        if agent is None:
            return
        silent = self.gaps.get(agent)
        if silent is None or device not in silent:
            return
        silent.discard(device)
        if not silent:
            self.close_gap(agent, at)

    def close_gap(self, agent: str, at: datetime) -> None:
        """Restore the agent's gap ticket: data flows again from every device it listed."""
        self.gaps.pop(agent, None)
        ticket = self.ops.active(agent, [GAP_RULE])
        if ticket is not None:
            self.ops.change(ticket.id, lambda t: machine.restore(t, at=later(t, at), note="data flows again"))


def _newest(tickets: list[Ticket], rule: str, states: tuple[TicketState, ...]) -> Ticket | None:
    """The first (newest) of ``tickets`` for ``rule`` in ``states``, as ``TicketOps.active`` finds it."""
    return next((t for t in tickets if t.rule == rule and t.state in states), None)


def _wall() -> datetime:
    return datetime.now(UTC)


def _with_episode(ticket: Ticket, episode: str) -> Ticket:
    return replace(ticket, episode=episode)


def _folded(ticket: Ticket) -> bool:
    last = ticket.events[-1] if ticket.events else None
    return (ticket.state is TicketState.CLOSED and last is not None and last.actor == SYSTEM
            and last.note.startswith(FOLD_NOTE))
