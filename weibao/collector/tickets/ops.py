"""Ticket changes as the engine, the API and the console make them: read, apply a machine function, save, notify.

Two writers change tickets (the engine's worker thread and engineers through the API). The store refuses
a copy that someone else changed in between (``ConcurrentUpdate``); ``TicketOps.change`` then reads the
ticket again and applies the action to the fresh copy. Every saved event goes to the notifier
(``notify.for_event``); a failing notifier is logged and never stops the change.

``unit()`` makes the changes of one block one transaction (``TicketStore.unit``); no notification tells of
a change that was not stored. A notifier that writes through the store (``transactional``: the outbox
writes its rows with ``TicketStore.writing``) queues them inside that transaction, so a change and the
notifications telling of it are committed together or not at all, even if the process dies in between;
``after_commit`` (the sender's wake-up) runs once they are committed. Any other notifier is held back until
the commit and called after it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

from weibao.collector.notify.model import Notification, for_event
from weibao.collector.tickets import machine
from weibao.collector.tickets.machine import Change
from weibao.collector.tickets.model import SYSTEM, Ticket, TicketError, TicketKind, TicketState
from weibao.collector.tickets.store import ConcurrentUpdate, TicketStore

log = logging.getLogger(__name__)

ACTIVE = (TicketState.OPEN, TicketState.ACCEPTED)
NOT_CLOSED = (TicketState.OPEN, TicketState.ACCEPTED, TicketState.RESTORED)
_RETRIES = 5
# the longest a unit keeps its transaction (on SQLite: the file's write lock, ingest waiting for it) while
# work goes on between its writes; ``checkpoint`` then commits and the next write begins anew
UNIT_HOLD_S = 0.25

Notify = Callable[[Notification], object]


class TicketOps:
    """Ticket reads and changes with retries and notifications."""

    def __init__(self, store: TicketStore, notify: Notify | None = None, *, transactional: bool = False,
                 after_commit: Callable[[], object] | None = None) -> None:
        self.store = store
        self._notify = notify
        self._transactional = transactional
        self._after_commit = after_commit
        self.writes = 0  # ticket writes made through this object: a reader can tell its copies are stale
        self._local = threading.local()  # notifications held back by this thread's unit

    @contextmanager
    def unit(self) -> Iterator[None]:
        """The changes made on this thread inside the block in one transaction; their notifications after it
        has committed (see the module docstring). Nested blocks join the outer one."""
        if getattr(self._local, "held", None) is not None:
            yield
            return
        held: list[Notification] = []
        self._local.held = held
        raised: BaseException | None = None
        try:
            with self.store.unit():
                try:
                    yield
                except BaseException as exc:
                    raised = exc
                    raise
                finally:
                    self._local.held = None
        except BaseException as exc:
            if exc is raised:  # the block failed, what it had written was committed: tell of that
                self._committed(held)
            raise
        self._committed(held)

    def _committed(self, held: list[Notification]) -> None:
        """A unit's transaction has committed: send what was held back, or wake the sender for what the
        transaction queued itself."""
        if not self._transactional:
            self.notify(held)
        elif self._after_commit is not None:
            self._after_commit()

    def checkpoint(self, held_s: float = UNIT_HOLD_S) -> None:
        """``TicketStore.checkpoint``: the unit's writes so far committed if held ``held_s`` or longer, and
        then their notifications sent; if that commit fails, its writes are undone and their notifications
        dropped."""
        held: list[Notification] | None = getattr(self._local, "held", None)
        try:
            committed = self.store.checkpoint(held_s)
        except BaseException:
            if held is not None:
                held.clear()
            raise
        if not committed:
            return
        if self._transactional:
            if self._after_commit is not None:
                self._after_commit()
        elif held:
            out = list(held)
            held.clear()
            self._local.held = None  # sent now, not held again
            try:
                self.notify(out)
            finally:
                self._local.held = held

    def notify(self, items: Iterable[Notification]) -> None:
        if self._notify is None:
            return
        held: list[Notification] | None = getattr(self._local, "held", None)
        if held is not None and not self._transactional:
            held.extend(items)
            return
        for n in items:
            try:
                self._notify(n)
            except Exception:  # the outbox failing must not stop ticket changes; it is logged
                log.exception("could not queue notification %s", n.key)

    def _saved(self, change: Change, *, notify: bool = True) -> Ticket:
        self.writes += 1
        self.store.save(change.ticket)
        n = for_event(change.ticket, change.event) if notify else None
        if n is not None:
            self.notify([n])
        return change.ticket

    def change(self, ticket_id: str, action: Callable[[Ticket], Change], *, notify: bool = True) -> Ticket | None:
        """Apply ``action`` to the stored ticket; None if there is no such ticket.

        Raises ``IllegalTransition`` when the action is not allowed on the ticket as it now stands.
        """
        for _ in range(_RETRIES):
            ticket = self.store.get(ticket_id)
            if ticket is None:
                return None
            try:
                return self._saved(action(ticket), notify=notify)
            except ConcurrentUpdate:
                continue
        raise TicketError(f"ticket {ticket_id} kept changing under us; try again")

    def open(self, *, device: str, rule: str, at: datetime, episode: str | None, note: str = "",
             affected: Iterable[str] = (), level: int = 3, actor: str = SYSTEM,
             kind: TicketKind = TicketKind.FAULT, summary: str = "") -> Ticket:
        names = tuple(affected)  # build may run again (a retried transaction)
        built: list[Change] = []

        def build(ticket_id: str) -> Ticket:
            built.append(machine.open_ticket(ticket_id=ticket_id, device=device, rule=rule, level=level, at=at,
                                             actor=actor, episode=episode, affected=names, note=note,
                                             kind=kind, summary=summary))
            return built[-1].ticket

        self.writes += 1
        ticket = self.store.create(at, build)  # the id and the ticket in one transaction
        n = for_event(ticket, built[-1].event)
        if n is not None:
            self.notify([n])
        return ticket

    def save_copy(self, ticket: Ticket) -> None:
        """Store a ticket whose non-event fields (its episode) were changed without an event."""
        self.writes += 1
        self.store.save(ticket)

    # -- reads ---------------------------------------------------------------------------------------------
    def active(self, device: str, rules: Iterable[str] | None = None,
               states: tuple[TicketState, ...] = ACTIVE) -> Ticket | None:
        """The device's newest ticket in ``states`` (open or accepted by default), for one of ``rules``."""
        wanted = set(rules) if rules is not None else None
        for t in self.store.find(state=list(states), device=device, limit=50):
            if wanted is None or t.rule in wanted:
                return t
        return None

    def by_episode(self, episode: str) -> Ticket | None:
        """The newest ticket standing for ``episode`` (any state)."""
        return self.store.by_episode(episode)

    def by_episodes(self, episodes: Iterable[str]) -> dict[str, Ticket]:
        """The newest ticket of each episode that has one."""
        return self.store.by_episodes(list(episodes))
