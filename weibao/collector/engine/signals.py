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
- loss and latency episodes of a device that is down are the same fault: no ticket of their own;
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
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from weibao.collector.contract import (
    ContractRules,
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
from weibao.collector.tickets.model import SYSTEM, IllegalTransition, Ticket, TicketError, TicketState
from weibao.collector.tickets.ops import ACTIVE, NOT_CLOSED, TicketOps

log = logging.getLogger(__name__)

REACH = (Condition.DOWN, Condition.CUT_OFF)
REACH_RULES = (Condition.DOWN.value, Condition.CUT_OFF.value)
QUALITY = (Condition.LOSS, Condition.LATENCY, Condition.LOSS_OR_LATENCY)
GAP_RULE = "agent_gap"
FOLD_NOTE = "same fault as ticket"
_TICK = timedelta(milliseconds=1)


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

    def _within_down(self, ev: Evaluator, ep: Episode, now: datetime) -> bool:
        """Whether a loss or latency episode is part of the device being down: it began (give or take the
        upstream tolerance) within a reachability episode and has not outlasted it."""
        slack = self.rules.evaluation.upstream_tolerance
        for tracker in ev.trackers(ep.device):
            if tracker.key.condition not in REACH:
                continue
            for down in tracker.episodes(now):
                began = down.start - slack <= ep.start and (down.end is None or ep.start <= down.end)
                if not began:
                    continue
                if down.end is None or (ep.end is not None and ep.end <= down.end + slack):
                    return True
        return False

    def _outlasted(self, ev: Evaluator, ep: Episode, now: datetime) -> datetime | None:
        """When a loss or latency episode folded into the device's reachability fault became a fault of its
        own: the end of the last reachability episode it overlapped, if its own samples show it bad after
        that end. None while that fault lasts, or while what follows its end is not known yet (its samples
        do not reach past it): decided from the samples alone, whenever it is asked."""
        ends: list[datetime] = []
        for tracker in ev.trackers(ep.device):
            if tracker.key.condition not in REACH:
                continue
            for down in tracker.episodes(now):
                if down.end is None:
                    return None
                if down.end > ep.start and down.start <= ep.as_of:
                    ends.append(down.end)
        if not ends:
            return None
        end = max(ends)
        newest = ev.tracker(ep.device, ep.key).last_ts
        if newest is None or newest <= end:
            return None
        return end if any(iv.end > end for iv in ep.down) else None

    def sync(self, ep: Episode, ev: Evaluator, now: datetime, *, allow_ended: bool) -> Ticket | None:
        """Make the tickets match episode ``ep``; returns the ticket standing for it (None if none)."""
        if ep.device not in ev.devices:
            return None
        cond = ep.key.condition
        ticket = self.ops.by_episode(ep.id)
        if ep.affected_by is not None and cond in REACH:
            return self._sync_affected(ep, ev, ticket, now)
        if cond in QUALITY and self._within_down(ev, ep, now):
            down = self.ops.active(ep.device, REACH_RULES)
            if ticket is not None and ticket.state in ACTIVE and down is not None:
                self._fold(ticket, down, ep.start)
            return down
        if ticket is None and ep.is_open:
            ticket = self._adopt(ep, ev)
        if ticket is None:
            if not ep.is_open and not allow_ended:
                return None
            ticket = self._open(ep, ev)
        elif ep.is_open and ep.reopen_count > ticket.reopen_count:
            ticket = self._reopen(ticket, ep, ev)
        elif ep.is_open and _folded(ticket):
            # it was part of another fault; once that one has ended, what remains is a fault of its own
            since = self._outlasted(ev, ep, now)
            if since is None:
                return None
            rule = rule_name(ep.key, self._category(ev, ep.device))
            ticket = self.ops.open(device=ep.device, rule=rule, at=later(ticket, since), episode=ep.id,
                                   note=f"still {ep.key.condition.value} after {ticket.id} was folded")
        ticket = self.promote(ticket, ep, ev, now)  # before a restoration: the promotion came first
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

    def _adopt(self, ep: Episode, ev: Evaluator) -> Ticket | None:
        """The device's ticket of the same rule that this open episode continues, under another episode id
        (a replay from 5-minute rollups rounds the start): the active one, or one restored by hand
        within the re-open window of the episode's start."""
        rule = rule_name(ep.key, self._category(ev, ep.device))
        ticket = self.ops.active(ep.device, [rule])
        if ticket is None:
            ticket = self.ops.active(ep.device, [rule], states=(TicketState.RESTORED,))
            if ticket is None or abs(ticket.opened_at - ep.start) > self.window:
                return None
        adopted = _with_episode(ticket, ep.id)
        self.ops.save_copy(adopted)
        log.info("%s continues as episode %s", ticket.id, ep.id)
        return adopted

    def _open(self, ep: Episode, ev: Evaluator) -> Ticket:
        rule = rule_name(ep.key, self._category(ev, ep.device))
        prior = self.ops.active(ep.device, [rule], states=(TicketState.RESTORED,))
        if prior is not None and machine.reopen_due(prior, ep.start, window=self.window):
            reopened = self._reopen(prior, ep, ev)
            self.ops.save_copy(_with_episode(reopened, ep.id))
            return _with_episode(reopened, ep.id)
        note = f"{ep.key.condition.value} since {ep.start.isoformat()}"
        ticket = self.ops.open(device=ep.device, rule=rule, at=ep.start, episode=ep.id, note=note)
        if ep.key.condition in REACH:
            for other in self.ops.store.find(state=list(ACTIVE), device=ep.device, limit=20):
                if quality_rule(other.rule):
                    self._fold(other, ticket, ep.start)
        return ticket

    def _reopen(self, ticket: Ticket, ep: Episode, ev: Evaluator) -> Ticket:
        at = ep.as_of if ep.reopen_count else ep.start
        if ticket.state is TicketState.RESTORED:
            try:
                done = self.ops.change(ticket.id, lambda t: machine.reopen(
                    t, at=later(t, at), window=self.window, note="fault returned"))
                if done is not None:
                    return done
            except IllegalTransition as exc:
                log.info("%s: %s; opening a new ticket", ticket.id, exc.reason)
        if ticket.state is TicketState.RESTORED or ticket.state is TicketState.CLOSED:
            rule = rule_name(ep.key, self._category(ev, ep.device))
            return self.ops.open(device=ep.device, rule=rule, at=later(ticket, at), episode=ep.id,
                                 note=f"fault returned after ticket {ticket.id}")
        return ticket

    def _fold(self, ticket: Ticket, into: Ticket, at: datetime) -> None:
        """One fault, one ticket: close ``ticket`` with a note pointing at ``into``."""
        note = f"{FOLD_NOTE} {into.id} ({into.device} {into.rule})"
        self.ops.change(ticket.id, lambda t: machine.restore(t, at=later(t, at), note=note), notify=False)
        self.ops.change(ticket.id, lambda t: machine.close(t, at=t.last_activity, actor=SYSTEM, note=note))

    def promote(self, ticket: Ticket, ep: Episode, ev: Evaluator, now: datetime) -> Ticket:
        """Raise the ticket's level when a level-2 or level-1 row of its category holds (never lower it).

        Each level is recorded at the moment its row first held, so a fault learnt of late (a spool
        arriving in one batch) still shows level 2 from 10:00 and level 1 from 11:00, in that order.
        """
        if ticket.state is TicketState.CLOSED or ticket.level == 1:
            return ticket
        tracker = ev.tracker(ep.device, ep.key)
        # as of the device's own newest sample: what comes after it is not known yet
        newest = tracker.last_ts
        now = min(now, newest) if newest is not None else now
        cumulative = tracker.cumulative(now)
        category = self._category(ev, ep.device)
        steps: list[LevelDecision] = []
        single = self.rules.evaluation.working_single
        decision = level_of(ep, cumulative, category, self.calendar, now, working_single=single)
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


def _wall() -> datetime:
    return datetime.now(UTC)


def _with_episode(ticket: Ticket, episode: str) -> Ticket:
    return replace(ticket, episode=episode)


def _folded(ticket: Ticket) -> bool:
    last = ticket.events[-1] if ticket.events else None
    return (ticket.state is TicketState.CLOSED and last is not None and last.actor == SYSTEM
            and last.note.startswith(FOLD_NOTE))
