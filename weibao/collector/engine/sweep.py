"""The periodic pass of the engine (every ``contract.sweep_interval_s``, 15 s by default).

What only the passing of time can change:

1. monitoring gaps that became overdue (each tracker's ``advance``): no data is not down, it is a gap
   ticket for the agent; a gap ticket whose devices all send data again is restored. The engine says
   at what time each device's silence is judged (see ``service``);
2. every open episode is synced again: promotions that became true while the fault goes on (a
   working-hours outage reaches 1 h of working time), affected devices whose root ticket ended;
3. clock alerts (``clock_alerts``: due soon, breached) of every ticket not closed; each alert is
   queued once (the outbox deduplicates, and so does a memory of what was queued);
4. auto-close of restored tickets without feedback for 14 days (``machine.auto_close``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from weibao.collector.contract import ContractRules, Evaluator, WorkingCalendar
from weibao.collector.engine.setup import DeviceBook
from weibao.collector.engine.signals import GAP_RULE, FaultSync
from weibao.collector.errors import Fenced
from weibao.collector.notify.model import clock_alerts
from weibao.collector.tickets import machine
from weibao.collector.tickets.model import Ticket, TicketError, TicketState
from weibao.collector.tickets.ops import NOT_CLOSED, TicketOps
from weibao.collector.tickets.views import ticket_clocks

log = logging.getLogger(__name__)

_MAX_TICKETS = 100_000
_MAX_REMEMBERED = 200_000


class Sweeper:
    """One object per engine: remembers which clock alerts it already queued."""

    def __init__(self, ops: TicketOps, sync: FaultSync, rules: ContractRules, calendar: WorkingCalendar) -> None:
        self.ops = ops
        self.sync = sync
        self.rules = rules
        self.calendar = calendar
        self._alerted: set[str] = set()

    def run(self, ev: Evaluator, book: DeviceBook, now: datetime,
            gap_now: Callable[[str], datetime] | None = None) -> None:
        """One pass; ``gap_now(device)`` is the time a device's silence is judged at (default ``now``)."""
        self._step("gaps", lambda: self._gaps(ev, book, now, gap_now))
        self._step("gap tickets", lambda: self._gap_tickets(now))
        self._step("episodes", lambda: self._episodes(ev, now))
        self._step("auto-close", lambda: self._auto_close(now))

    def alert(self, now: datetime) -> None:
        """The clock alerts due (response, restoration, report, on-site: due soon or breached). Run outside
        the sweep's unit: each alert is queued in a transaction of its own and only then remembered."""
        self._step("clocks", lambda: self._clocks(now))

    def _step(self, name: str, step: Callable[[], None]) -> None:
        try:
            step()
        except Fenced:  # this replica no longer leads: the engine stops
            raise
        except Exception:  # one failing step (a store hiccup) must not skip the others
            log.exception("sweep step %s failed", name)
        self.ops.checkpoint()  # what the step wrote is committed once held long enough

    def _gaps(self, ev: Evaluator, book: DeviceBook, now: datetime,
              gap_now: Callable[[str], datetime] | None) -> None:
        signals = [sig for device in book.specs for tracker in ev.trackers(device)
                   for sig in tracker.advance(gap_now(device) if gap_now is not None else now)]
        self.sync.handle(signals, ev, book, now)

    def _gap_tickets(self, now: datetime) -> None:
        for t in self.ops.store.find(state=[TicketState.OPEN, TicketState.ACCEPTED], rule=GAP_RULE):
            if not self.sync.gaps.get(t.device):
                self.sync.close_gap(t.device, now)

    def _episodes(self, ev: Evaluator, now: datetime) -> None:
        """Sync every open episode. Their tickets are read together (one query for many episodes), and
        read again, for the episodes still to come, after any ticket was written meanwhile."""
        episodes = ev.open_episodes(now)
        known: dict[str, Ticket] = {}
        read_at = -1
        for n, ep in enumerate(episodes):
            if read_at != self.ops.writes:
                read_at = self.ops.writes
                known = self.ops.by_episodes(e.id for e in episodes[n:])
            try:
                self.sync.sync(ep, ev, now, allow_ended=False, known=known)
            except TicketError as exc:
                log.warning("episode %s: %s", ep.id, exc)
            self.ops.checkpoint()

    def _clocks(self, now: datetime) -> None:
        if len(self._alerted) > _MAX_REMEMBERED:
            self._alerted.clear()  # the outbox still refuses duplicates
        for t in self.ops.store.find(state=list(NOT_CLOSED), limit=_MAX_TICKETS):
            clocks = ticket_clocks(t, calendar=self.calendar, limits=self.rules.clocks, now=now)
            fresh = [n for n in clock_alerts(t, clocks, now) if n.key not in self._alerted]
            self.ops.notify(fresh)
            self._alerted.update(n.key for n in fresh)

    def _auto_close(self, now: datetime) -> None:
        for t in self.ops.store.find(state=TicketState.RESTORED, limit=_MAX_TICKETS):
            if machine.auto_close_due(t, now):
                try:
                    self.ops.change(t.id, lambda x: machine.auto_close(x, now=now))
                except TicketError as exc:
                    log.warning("auto-close of %s: %s", t.id, exc)
                self.ops.checkpoint()
