"""SQLAlchemy 2 persistence of tickets, their events, and maintenance windows (SQLite or PostgreSQL).

The tables are declared on the state store's ``Base`` (collector/state/models.py) and follow its habits:
times are integers, milliseconds since the epoch in UTC (``*_ms``), lists are JSON text. Until the state
store's migrations create them, ``create_schema`` does (tests and the embedded default).
Events are append-only with the primary key (ticket_id, seq): two writers that changed the same ticket from
the same version collide on it, and the second gets ``ConcurrentUpdate`` instead of silently losing a change.

``unit()``: the ticket writes a thread makes inside the block share one transaction, committed at its end
(the contract engine's changes from one batch: one commit instead of one per ticket). It begins at the
first write, taking SQLite's write lock at once (``BEGIN IMMEDIATE``) so that what it reads from then on
cannot change under it; reads on that thread go through it and see its writes. ``checkpoint`` commits
early what has been held long enough, so that others' writes do not wait for all of the block. Each write
is a savepoint: one that fails (``ConcurrentUpdate``) is undone alone and the others stand. Other threads
see nothing of it until it commits, and their ticket writes wait for it (on SQLite the whole file's writes
do: keep units short).

``guarded(check)``: every transaction this thread commits through the store inside the block (a unit's, at
its end or checkpoint, or a write's own) runs ``check`` on its session just before the commit; when
``check`` raises, the transaction is rolled back and the error goes on. The contract engine of a collector
replica runs under its leader fence (``weibao.collector.ha.leader.leader_fence``), so that nothing it
wrote after its term ended is kept.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Engine, ForeignKey, Index, Integer, String, Text, or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from weibao.collector.contract.maintenance import MaintenanceSchedule, MaintenanceWindow
from weibao.collector.state.models import Base
from weibao.collector.tickets.model import Action, Ticket, TicketError, TicketEvent, TicketKind, TicketState
from weibao.core.timeutil import SHANGHAI, from_ms, to_ms

log = logging.getLogger(__name__)

Guard = Callable[[Session], None]  # see ``TicketStore.guarded``

_MS = timedelta(milliseconds=1)


class ConcurrentUpdate(TicketError):
    """Someone else changed the ticket since it was read; read it again and re-apply the action."""


def _local(ms: int) -> datetime:
    """A stored time, shown in contract time (Asia/Shanghai)."""
    return from_ms(ms, SHANGHAI)


def _opt_ms(t: datetime | None) -> int | None:
    return to_ms(t) if t is not None else None


def _opt_dt(ms: int | None) -> datetime | None:
    return _local(ms) if ms is not None else None


class TicketRow(Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_device_state", "device", "state"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device: Mapped[str] = mapped_column(String(128))
    rule: Mapped[str] = mapped_column(String(128))
    level: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    opened_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    accepted_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    restored_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reported_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    closed_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    affected: Mapped[str] = mapped_column(Text, default="[]")
    episode: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    version: Mapped[int] = mapped_column(Integer)  # number of events stored
    kind: Mapped[str] = mapped_column(String(16), default="fault", server_default="fault")
    summary: Mapped[str] = mapped_column(Text, default="", server_default="")
    solution_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    dispatched_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    onsite_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class TicketEventRow(Base):
    __tablename__ = "ticket_events"

    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    from_level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    devices: Mapped[str] = mapped_column(Text, default="[]")
    recorded_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class TicketCounterRow(Base):
    """Last number handed out per local day, for ids such as 20261125-0003."""

    __tablename__ = "ticket_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class MaintenanceWindowRow(Base):
    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    devices: Mapped[str] = mapped_column(Text)  # JSON list of device names
    start_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    end_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_ms: Mapped[int] = mapped_column(BigInteger)


TABLES = ("tickets", "ticket_events", "ticket_counters", "maintenance_windows")


@dataclass(frozen=True, slots=True)
class StoredWindow:
    """A maintenance window as stored: its id (to delete it), who planned it, and the window itself."""

    id: int
    window: MaintenanceWindow
    created_by: str
    created_at: datetime


def _event(row: TicketEventRow) -> TicketEvent:
    return TicketEvent(ticket_id=row.ticket_id, seq=row.seq, at=_local(row.at_ms), actor=row.actor,
                       kind=Action(row.kind), note=row.note,
                       from_state=TicketState(row.from_state) if row.from_state else None,
                       to_state=TicketState(row.to_state) if row.to_state else None,
                       from_level=row.from_level, to_level=row.to_level, devices=tuple(json.loads(row.devices)),
                       recorded_at=_opt_dt(row.recorded_ms))


def _ticket(row: TicketRow, events: Sequence[TicketEventRow]) -> Ticket:
    return Ticket(id=row.id, device=row.device, rule=row.rule, level=row.level, state=TicketState(row.state),
                  opened_at=_local(row.opened_ms), accepted_at=_opt_dt(row.accepted_ms),
                  restored_at=_opt_dt(row.restored_ms), reported_at=_opt_dt(row.reported_ms),
                  closed_at=_opt_dt(row.closed_ms), affected=tuple(json.loads(row.affected)),
                  episode=row.episode, events=tuple(_event(e) for e in events), kind=TicketKind(row.kind),
                  summary=row.summary, solution_at=_opt_dt(row.solution_ms),
                  dispatched_at=_opt_dt(row.dispatched_ms), onsite_at=_opt_dt(row.onsite_ms))


def _same(row: TicketEventRow | None, event: TicketEvent) -> bool:
    """Whether the stored event is the copy's event: the copy descends from what is stored."""
    return (row is not None and row.kind == event.kind.value and row.actor == event.actor
            and row.at_ms == to_ms(event.at) and row.note == event.note)


def _window(row: MaintenanceWindowRow) -> StoredWindow:
    w = MaintenanceWindow(devices=frozenset(json.loads(row.devices)), start=_local(row.start_ms),
                          end=_local(row.end_ms), reason=row.reason)
    return StoredWindow(id=row.id, window=w, created_by=row.created_by, created_at=_local(row.created_ms))


@dataclass
class _Unit:
    """One thread's unit of work: its session once the first write began the transaction."""

    session: Session | None = None
    began: float = 0.0  # monotonic time its transaction began
    held: ExitStack | None = None  # the process's write lock, while the transaction is open
    guard: Guard | None = None  # run just before the commit (``TicketStore.guarded``)

    def discard(self) -> None:
        """Roll back and close the transaction (if begun) and let go of the write lock."""
        s, held = self.session, self.held
        self.session = self.held = None
        try:
            if s is not None:
                s.close()
        finally:
            if held is not None:
                held.close()

    def end(self) -> bool:
        """Commit the transaction (if begun; whether it was) and let go of the write lock. When the guard
        refuses the commit, the transaction is rolled back."""
        s, held = self.session, self.held
        self.session = self.held = None
        try:
            if s is None:
                return False
            try:
                if self.guard is not None:
                    self.guard(s)
                s.commit()
                return True
            finally:
                s.close()
        finally:
            if held is not None:
                held.close()


class TicketStore:
    """Tickets, ticket events and maintenance windows in one SQL database."""

    def __init__(self, engine: Engine, *,
                 write_lock: Callable[[], AbstractContextManager[object]] | None = None) -> None:
        """``write_lock``: the lock the process's other writers of the same SQLite file (ingest) hold while
        they write; a unit holds it for its transaction, so that they queue for each other on it and not in
        SQLite's busy handler, which polls."""
        self.engine = engine
        self._write_lock = write_lock
        self._local = threading.local()

    # -- units of work -----------------------------------------------------------------------------------
    @contextmanager
    def unit(self) -> Iterator[None]:
        """Ticket writes of this thread inside the block in one transaction (see the module docstring).
        Nested blocks join the outer one. When the block raises, the writes that were made are still
        committed (each write stands or falls alone), then the error goes on."""
        if getattr(self._local, "unit", None) is not None:
            yield
            return
        unit = self._local.unit = _Unit()
        try:
            yield
        finally:
            self._local.unit = None
            unit.end()

    def checkpoint(self, held_s: float) -> bool:
        """Commit this thread's unit now if its transaction has been open ``held_s`` or longer (whether it
        did); its next write begins another. Bounds how long the unit keeps SQLite's write lock from
        everyone else (ingest) while its thread does work between writes."""
        unit: _Unit | None = getattr(self._local, "unit", None)
        if unit is not None and unit.session is not None and time.monotonic() - unit.began >= held_s:
            return unit.end()
        return False

    @contextmanager
    def guarded(self, check: Guard | None) -> Iterator[None]:
        """Inside the block, every transaction this thread commits through the store is checked by ``check``
        first (see the module docstring); ``None`` checks nothing."""
        before = getattr(self._local, "guard", None)
        self._local.guard = check
        try:
            yield
        finally:
            self._local.guard = before

    def in_unit(self) -> bool:
        """Whether this thread is inside ``unit()``."""
        return getattr(self._local, "unit", None) is not None

    def _unit_session(self) -> Session | None:
        """This thread's unit session if its transaction has begun (fresh from the database on PostgreSQL,
        where others commit between our statements; SQLite's write lock keeps others out)."""
        unit: _Unit | None = getattr(self._local, "unit", None)
        if unit is None or unit.session is None:
            return None
        try:
            broken = unit.session.connection().invalidated
        except SQLAlchemyError:
            broken = True
        if broken:
            # its connection broke (and the transaction with it): what it had not committed is gone; end it,
            # so that the next write begins another transaction instead of failing on the dead one
            log.warning("a unit of ticket changes lost its database connection; its uncommitted writes are undone")
            unit.discard()
            return None
        if self.engine.dialect.name != "sqlite":
            unit.session.expire_all()
        return unit.session

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        """A session to read in: the unit's (it sees the unit's writes), else a new one."""
        s = self._unit_session()
        if s is not None:
            yield s
            return
        with Session(self.engine) as fresh:
            yield fresh

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A transaction to write in, for tickets or anything else the state database keeps beside them: a
        savepoint of this thread's unit (its transaction begun by the first write), else a transaction of its
        own. Code running inside a unit writes to the state database through this only: on SQLite a write
        of its own would wait for the unit's lock, held by the same thread."""
        unit: _Unit | None = getattr(self._local, "unit", None)
        guard: Guard | None = getattr(self._local, "guard", None)
        if unit is None:
            with Session(self.engine) as own, own.begin():
                yield own
                if guard is not None:
                    guard(own)
            return
        s = self._unit_session()
        if s is None:
            held = ExitStack()
            s = Session(self.engine)
            try:
                if self._write_lock is not None:
                    held.enter_context(self._write_lock())
                if self.engine.dialect.name == "sqlite":
                    s.connection().exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                s.close()
                held.close()
                raise
            unit.session, unit.held, unit.began, unit.guard = s, held, time.monotonic(), guard
        with s.begin_nested():
            yield s

    def create_schema(self) -> None:
        """Create the ticket tables if missing (what the state store's migration does in production)."""
        Base.metadata.create_all(self.engine, tables=[Base.metadata.tables[t] for t in TABLES])

    # -- ids ---------------------------------------------------------------------------------------------
    def next_id(self, at: datetime) -> str:
        """A new ticket id, ``YYYYMMDD-NNNN`` by the local (Asia/Shanghai) day of ``at``."""
        day = _day(at)
        for _ in range(3):
            try:
                with self.writing() as s:
                    n = _allocate(s, day)
                return f"{day}-{n:04d}"
            except IntegrityError:  # two writers created the day's counter at once; the loser retries
                continue
        raise TicketError(f"could not allocate a ticket id for {day}")

    def create(self, at: datetime, build: Callable[[str], Ticket]) -> Ticket:
        """A new ticket: a new id (as ``next_id``) given to ``build``, and the ticket it returns stored, in
        one transaction (the id is taken only if the ticket is stored)."""
        day = _day(at)
        for _ in range(3):
            try:
                with self.writing() as s:
                    ticket = build(f"{day}-{_allocate(s, day):04d}")
                    self._write(s, ticket)
                return ticket
            except IntegrityError:  # two writers created the day's counter at once; the loser retries
                continue
        raise TicketError(f"could not allocate a ticket id for {day}")

    # -- tickets -----------------------------------------------------------------------------------------
    def save(self, ticket: Ticket) -> None:
        """Store the ticket and whichever of its events are not stored yet (in one transaction)."""
        try:
            with self.writing() as s:
                self._write(s, ticket)
        except IntegrityError as exc:
            raise ConcurrentUpdate(f"ticket {ticket.id} was changed by someone else: read it again") from exc

    def _write(self, s: Session, ticket: Ticket) -> None:
        row = s.get(TicketRow, ticket.id, with_for_update=True, populate_existing=True)
        stored = 0 if row is None else row.version
        if stored > len(ticket.events):
            raise ConcurrentUpdate(f"ticket {ticket.id} has {stored} stored changes, this copy "
                                   f"{len(ticket.events)}: read it again")
        if stored and not _same(s.get(TicketEventRow, (ticket.id, stored - 1)),
                                ticket.events[stored - 1]):
            raise ConcurrentUpdate(f"ticket {ticket.id} was changed by someone else: read it again")
        values: dict[str, Any] = dict(
            device=ticket.device, rule=ticket.rule, level=ticket.level, state=ticket.state.value,
            opened_ms=to_ms(ticket.opened_at), accepted_ms=_opt_ms(ticket.accepted_at),
            restored_ms=_opt_ms(ticket.restored_at), reported_ms=_opt_ms(ticket.reported_at),
            closed_ms=_opt_ms(ticket.closed_at), affected=json.dumps(list(ticket.affected)),
            episode=ticket.episode, version=len(ticket.events), kind=ticket.kind.value,
            summary=ticket.summary, solution_ms=_opt_ms(ticket.solution_at),
            dispatched_ms=_opt_ms(ticket.dispatched_at), onsite_ms=_opt_ms(ticket.onsite_at))
        if row is None:
            s.add(TicketRow(id=ticket.id, **values))
            s.flush()
        else:
            for key, value in values.items():
                setattr(row, key, value)
        for e in ticket.events[stored:]:
            s.add(TicketEventRow(ticket_id=e.ticket_id, seq=e.seq, at_ms=to_ms(e.at), actor=e.actor,
                                 kind=e.kind.value, note=e.note,
                                 from_state=e.from_state.value if e.from_state else None,
                                 to_state=e.to_state.value if e.to_state else None,
                                 from_level=e.from_level, to_level=e.to_level,
                                 devices=json.dumps(list(e.devices)),
                                 recorded_ms=_opt_ms(e.recorded_at)))

    def get(self, ticket_id: str) -> Ticket | None:
        with self._reading() as s:
            return _load(s, s.get(TicketRow, ticket_id))

    def by_episode(self, episode: str) -> Ticket | None:
        """The newest ticket standing for ``episode`` (any state), read in one session."""
        with self._reading() as s:
            row = s.scalars(select(TicketRow).where(TicketRow.episode == episode)
                            .order_by(TicketRow.opened_ms.desc(), TicketRow.id.desc()).limit(1)).first()
            return _load(s, row)

    def by_episodes(self, episodes: Sequence[str]) -> dict[str, Ticket]:
        """The newest ticket of each of ``episodes`` that has one (as ``by_episode``), read in one session:
        a query for the tickets and one for their events per 500 episodes."""
        wanted = list(dict.fromkeys(episodes))
        out: dict[str, Ticket] = {}
        with self._reading() as s:
            for k in range(0, len(wanted), 500):
                rows = s.scalars(select(TicketRow).where(TicketRow.episode.in_(wanted[k:k + 500]))
                                 .order_by(TicketRow.opened_ms, TicketRow.id)).all()
                newest = {r.episode: r for r in rows if r.episode is not None}  # the last one of each wins
                if not newest:
                    continue
                events: dict[str, list[TicketEventRow]] = {r.id: [] for r in newest.values()}
                for e in s.scalars(select(TicketEventRow).where(TicketEventRow.ticket_id.in_(list(events)))
                                   .order_by(TicketEventRow.ticket_id, TicketEventRow.seq)):
                    events[e.ticket_id].append(e)
                for episode, row in newest.items():
                    out[episode] = _ticket(row, events[row.id])
        return out

    def find(self, *, state: TicketState | Sequence[TicketState] | None = None, device: str | None = None,
             rule: str | None = None, opened_since: datetime | None = None,
             opened_before: datetime | None = None, not_closed_before: datetime | None = None,
             level: int | None = None, limit: int = 1000, offset: int = 0) -> list[Ticket]:
        """Tickets, newest first, filtered; each with its whole history. ``not_closed_before``: leave out
        tickets closed before that time (still open ones stay). ``offset`` skips that many (pages)."""
        q = (select(TicketRow).order_by(TicketRow.opened_ms.desc(), TicketRow.id.desc()).limit(limit)
             .offset(offset))
        if level is not None:
            q = q.where(TicketRow.level == level)
        if state is not None:
            states = [state] if isinstance(state, TicketState) else list(state)
            q = q.where(TicketRow.state.in_([st.value for st in states]))
        if device is not None:
            q = q.where(TicketRow.device == device)
        if rule is not None:
            q = q.where(TicketRow.rule == rule)
        if opened_since is not None:
            q = q.where(TicketRow.opened_ms >= to_ms(opened_since))
        if opened_before is not None:
            q = q.where(TicketRow.opened_ms < to_ms(opened_before))
        if not_closed_before is not None:
            q = q.where(or_(TicketRow.closed_ms.is_(None), TicketRow.closed_ms >= to_ms(not_closed_before)))
        with self._reading() as s:
            rows = s.scalars(q).all()
            if not rows:
                return []
            by_ticket: dict[str, list[TicketEventRow]] = {r.id: [] for r in rows}
            for e in s.scalars(select(TicketEventRow).where(TicketEventRow.ticket_id.in_(list(by_ticket)))
                               .order_by(TicketEventRow.ticket_id, TicketEventRow.seq)):
                by_ticket[e.ticket_id].append(e)
            return [_ticket(r, by_ticket[r.id]) for r in rows]

    def current(self, device: str, rule: str | None = None) -> Ticket | None:
        """The device's newest ticket that is not closed (for ``rule`` if given): the one a fault belongs to."""
        open_states = [TicketState.OPEN, TicketState.ACCEPTED, TicketState.RESTORED]
        found = self.find(state=open_states, device=device, rule=rule, limit=1)
        return found[0] if found else None

    # -- maintenance windows -----------------------------------------------------------------------------
    def add_window(self, *, devices: Sequence[str], start: datetime, end: datetime, created_by: str,
                   reason: str = "", now: datetime | None = None) -> StoredWindow:
        """Plan a window; the window itself is validated by the contract core (aware times, end > start)."""
        window = MaintenanceWindow(devices=frozenset(devices), start=start, end=end, reason=reason)
        created = now or datetime.now(UTC)
        with Session(self.engine) as s, s.begin():
            row = MaintenanceWindowRow(devices=json.dumps(sorted(window.devices)), start_ms=to_ms(start),
                                       end_ms=to_ms(end), reason=reason, created_by=created_by,
                                       created_ms=to_ms(created))
            s.add(row)
            s.flush()
            return _window(row)

    def delete_window(self, window_id: int) -> bool:
        with Session(self.engine) as s, s.begin():
            row = s.get(MaintenanceWindowRow, window_id)
            if row is None:
                return False
            s.delete(row)
            return True

    def windows(self, *, device: str | None = None, start: datetime | None = None,
                end: datetime | None = None) -> list[StoredWindow]:
        """Windows for ``device`` (all devices if None) overlapping [start, end), in order of start."""
        q = select(MaintenanceWindowRow).order_by(MaintenanceWindowRow.start_ms, MaintenanceWindowRow.id)
        if end is not None:
            q = q.where(MaintenanceWindowRow.start_ms < to_ms(end))
        if start is not None:
            q = q.where(MaintenanceWindowRow.end_ms > to_ms(start))
        with Session(self.engine) as s:
            found = [_window(r) for r in s.scalars(q)]
        return [w for w in found if device is None or device in w.window.devices]

    def schedule(self, *, start: datetime | None = None, end: datetime | None = None) -> MaintenanceSchedule:
        """The stored windows as the contract core's MaintenanceSchedule."""
        return MaintenanceSchedule(w.window for w in self.windows(start=start, end=end))

    def in_maintenance(self, device: str, at: datetime) -> bool:
        return bool(self.windows(device=device, start=at, end=at + _MS))


def _day(at: datetime) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y%m%d")


def _allocate(s: Session, day: str) -> int:
    """The day's next ticket number, taken in ``s``'s transaction."""
    row = s.execute(select(TicketCounterRow).where(TicketCounterRow.day == day)
                    .with_for_update()).scalar_one_or_none()
    if row is None:
        row = TicketCounterRow(day=day, last=0)
        s.add(row)
    row.last += 1
    return row.last


def _load(s: Session, row: TicketRow | None) -> Ticket | None:
    """The ticket of ``row`` with its events, read in ``s``."""
    if row is None:
        return None
    events = s.scalars(select(TicketEventRow).where(TicketEventRow.ticket_id == row.id)
                       .order_by(TicketEventRow.seq)).all()
    return _ticket(row, events)
