"""Ticket persistence on SQLite and on a real PostgreSQL started by the test: round trip, ids, concurrency,
units of work, maintenance windows."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tests.peers import postgres
from weibao.collector.errors import Fenced
from weibao.collector.notify.model import Notification, for_event
from weibao.collector.notify.outbox import SqlOutbox
from weibao.collector.tickets import machine as m
from weibao.collector.tickets.model import Action, IllegalTransition, Ticket, TicketState
from weibao.collector.tickets.ops import TicketOps
from weibao.collector.tickets.store import ConcurrentUpdate, TicketStore

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 25, 23, 50, 0, 123000, tzinfo=CST)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    reason = postgres.missing()
    if reason is not None:
        pytest.skip(reason)
    with postgres.run_postgres() as pg:
        yield pg.url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    else:
        eng = create_engine(request.getfixturevalue("pg_url"))
    TicketStore(eng).create_schema()
    SqlOutbox(eng).create_schema()
    yield eng
    if request.param == "postgresql":
        with eng.begin() as conn:
            for table in ("ticket_events", "tickets", "ticket_counters", "maintenance_windows", "notify_outbox"):
                conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608  # fixed table names
    eng.dispose()


def test_round_trip(engine: Engine) -> None:
    store = TicketStore(engine)
    tid = store.next_id(T0)
    t = m.open_ticket(ticket_id=tid, device="core-sw-1", rule="backbone_unreachable", level=3, at=T0,
                      episode="ep-7", affected=["acc-1"]).ticket
    store.save(t)
    t = m.accept(t, at=T0 + timedelta(minutes=4), actor="zhang").ticket
    t = m.promote(t, level=2, at=T0 + timedelta(hours=1), note="1 h").ticket
    t = m.attach_affected(t, devices=["acc-2"], at=T0 + timedelta(hours=1)).ticket
    t = m.restore(t, at=T0 + timedelta(hours=2), actor="zhang", note="rebooted the supervisor").ticket
    store.save(t)
    back = store.get(tid)
    assert back == t  # aware datetimes compare by instant; all fields and the whole history survive
    assert back is not None and back.opened_at.utcoffset() == timedelta(hours=8)
    assert store.get("nope") is None
    assert [x.id for x in store.find(state=TicketState.RESTORED)] == [tid]
    assert store.find(state=TicketState.OPEN) == []
    assert store.current("core-sw-1") == t and store.current("core-sw-1", "other-rule") is None
    assert store.find(opened_since=T0 + timedelta(seconds=1)) == []


def test_ids_follow_the_local_day(engine: Engine) -> None:
    store = TicketStore(engine)
    # 23:50 in Shanghai on the 25th is 15:50 UTC: the id carries the local day
    assert [store.next_id(T0) for _ in range(3)] == ["20261125-0001", "20261125-0002", "20261125-0003"]
    assert store.next_id(T0 + timedelta(minutes=20)) == "20261126-0001"


def test_create_takes_the_id_with_the_ticket(engine: Engine) -> None:
    store = TicketStore(engine)
    assert store.next_id(T0) == "20261125-0001"
    t = store.create(T0, lambda tid: m.open_ticket(ticket_id=tid, device="sw-1", rule="down", level=3, at=T0,
                                                    episode="ep-1").ticket)
    assert t.id == "20261125-0002" and store.get(t.id) == t

    def refused(tid: str) -> Ticket:
        raise IllegalTransition(tid, None, Action.OPEN, "refused")

    with pytest.raises(IllegalTransition):
        store.create(T0, refused)
    assert store.next_id(T0) == "20261125-0003"  # a refused ticket takes no number


def test_tickets_by_episode_one_by_one_and_together(engine: Engine) -> None:
    store = TicketStore(engine)
    first = m.open_ticket(ticket_id=store.next_id(T0), device="sw-1", rule="down", level=3, at=T0,
                          episode="ep-1").ticket
    later = m.open_ticket(ticket_id=store.next_id(T0), device="sw-1", rule="down", level=3,
                          at=T0 + timedelta(minutes=5), episode="ep-1").ticket
    other = m.open_ticket(ticket_id=store.next_id(T0), device="sw-2", rule="down", level=3, at=T0,
                          episode="ep-2").ticket
    other = m.accept(other, at=T0 + timedelta(minutes=1), actor="zhang").ticket
    for t in (first, later, other):
        store.save(t)
    assert store.by_episode("ep-1") == later and store.by_episode("ep-2") == other
    assert store.by_episode("ep-3") is None
    assert store.by_episodes(["ep-1", "ep-2", "ep-3", "ep-1"]) == {"ep-1": later, "ep-2": other}
    assert store.by_episodes([]) == {}


def test_concurrent_change_is_detected(engine: Engine) -> None:
    store = TicketStore(engine)
    t = m.open_ticket(ticket_id="c-1", device="d", rule="r", level=3, at=T0).ticket
    store.save(t)
    a = m.accept(t, at=T0 + timedelta(minutes=1), actor="zhang").ticket
    b = m.comment(t, at=T0 + timedelta(minutes=1), actor="li", note="looking").ticket
    store.save(a)
    with pytest.raises(ConcurrentUpdate):
        store.save(b)
    with pytest.raises(ConcurrentUpdate):
        store.save(t)  # an older copy
    assert store.get("c-1") == a


def test_a_unit_commits_its_writes_once_at_its_end_and_then_notifies(engine: Engine) -> None:
    told: list[Notification] = []
    ops, outside = TicketOps(TicketStore(engine), told.append), TicketStore(engine)
    with ops.unit():
        ids = [ops.open(device=f"d{i}", rule="down", at=T0, episode=f"ep-{i}").id for i in range(3)]
        accepted = ops.change(ids[0], lambda t: m.accept(t, at=T0 + timedelta(minutes=2), actor="zhang"))
        assert accepted is not None and accepted.state is TicketState.ACCEPTED
        restored = ops.change(ids[0], lambda t: m.restore(t, at=T0 + timedelta(minutes=9), note="back"))
        assert restored is not None
        # inside, reads see the unit's writes; outside nothing is there yet, and nobody has been told
        assert ops.by_episode("ep-2") is not None and ops.store.get(ids[0]) == restored
        assert [t.id for t in ops.store.find(device="d1")] == [ids[1]]
        assert set(ops.by_episodes(["ep-0", "ep-1"])) == {"ep-0", "ep-1"}
        assert outside.get(ids[0]) is None and outside.find() == []
        assert told == []
    assert outside.get(ids[0]) == restored and len(outside.find()) == 3
    assert [n.ticket_id for n in told] == [*ids, ids[0]]  # opened x 3, restored (accepting tells nobody)
    assert len({t[9:] for t in ids}) == 3  # three ids of the day, none taken twice


def test_a_write_that_fails_in_a_unit_fails_alone(engine: Engine) -> None:
    ops = TicketOps(TicketStore(engine))
    t = ops.open(device="d", rule="down", at=T0, episode="ep-1")
    stale = m.comment(t, at=T0 + timedelta(minutes=1), actor="li", note="looking").ticket
    TicketOps(TicketStore(engine)).change(t.id, lambda x: m.accept(x, at=T0 + timedelta(minutes=1), actor="zhang"))
    with ops.unit():
        before = ops.open(device="e", rule="down", at=T0, episode="ep-2")
        with pytest.raises(ConcurrentUpdate):
            ops.store.save(stale)
        after = ops.open(device="f", rule="down", at=T0, episode="ep-3")
    outside = TicketStore(engine)
    assert outside.get(before.id) == before and outside.get(after.id) == after
    back = outside.get(t.id)
    assert back is not None and [e.kind for e in back.events] == [Action.OPEN, Action.ACCEPT]


def test_a_unit_whose_block_raises_keeps_and_tells_what_it_wrote(engine: Engine) -> None:
    told: list[Notification] = []
    ops = TicketOps(TicketStore(engine), told.append)
    with pytest.raises(RuntimeError, match="half way"), ops.unit():
        t = ops.open(device="d", rule="down", at=T0, episode="ep-1")
        raise RuntimeError("half way")
    assert TicketStore(engine).get(t.id) == t and [n.ticket_id for n in told] == [t.id]
    assert not ops.store.in_unit()


def test_a_writer_on_another_thread_waits_for_the_unit_then_applies_its_change_to_the_fresh_ticket(
        engine: Engine) -> None:
    ops, api = TicketOps(TicketStore(engine)), TicketOps(TicketStore(engine))
    t = ops.open(device="d", rule="down", at=T0, episode="ep-1")
    done = threading.Event()

    def engineer() -> None:
        api.change(t.id, lambda x: m.comment(x, at=T0 + timedelta(minutes=3), actor="li", note="on my way"))
        done.set()

    with ops.unit():
        ops.change(t.id, lambda x: m.accept(x, at=T0 + timedelta(minutes=2), actor="zhang"))
        worker = threading.Thread(target=engineer)
        worker.start()
        time.sleep(0.5)
        assert not done.is_set()  # the ticket (SQLite: the file) is the unit's until it commits
    worker.join(timeout=30)
    assert done.is_set()
    back = api.store.get(t.id)
    assert back is not None and [e.kind for e in back.events] == [Action.OPEN, Action.ACCEPT, Action.COMMENT]


def test_a_unit_holds_the_write_lock_from_its_first_write_until_it_commits(engine: Engine) -> None:
    """The lock ingest holds while it writes the same SQLite file: a unit takes it with its transaction and
    lets go when it commits (at its end, or at a checkpoint once held long enough)."""
    lock = threading.Lock()
    store = TicketStore(engine, write_lock=lambda: lock)
    ops = TicketOps(store)
    with ops.unit():
        ops.by_episode("ep-0")
        assert not lock.locked()  # reads alone take nothing
        first = ops.open(device="d", rule="down", at=T0, episode="ep-1")
        assert lock.locked()
        ops.checkpoint(60.0)
        assert lock.locked()  # not held for a minute yet
        ops.checkpoint(0.0)
        assert not lock.locked() and TicketStore(engine).get(first.id) == first  # committed
        second = ops.open(device="e", rule="down", at=T0, episode="ep-2")
        assert lock.locked() and TicketStore(engine).get(second.id) is None
    assert not lock.locked() and TicketStore(engine).get(second.id) == second


def test_a_guard_undoes_the_commit_it_refuses_with_its_notifications(engine: Engine) -> None:
    """``guarded``: a unit's commit at a checkpoint, at its end, and a write's own transaction are each checked
    just before they commit; what the check refuses is rolled back and nobody is told of it."""
    told: list[Notification] = []
    checks: list[str] = []
    refuse = threading.Event()

    def guard(s: Session) -> None:
        s.execute(select(1))  # it runs inside the transaction about to commit
        checks.append("checked")
        if refuse.is_set():
            raise Fenced("term 1 has ended")

    ops, outside = TicketOps(TicketStore(engine), told.append), TicketStore(engine)
    other_thread: list[Ticket] = []
    with ops.store.guarded(guard):
        with pytest.raises(Fenced), ops.unit():
            first = ops.open(device="d", rule="down", at=T0, episode="ep-1")
            ops.checkpoint(0.0)  # committed, and told at once
            assert outside.get(first.id) == first and [n.ticket_id for n in told] == [first.id]
            second = ops.open(device="e", rule="down", at=T0, episode="ep-2")
            refuse.set()
        assert outside.get(second.id) is None and [n.ticket_id for n in told] == [first.id]
        assert outside.by_episode("ep-2") is None
        with pytest.raises(Fenced):  # a write outside a unit: its own transaction, refused the same way
            ops.open(device="f", rule="down", at=T0, episode="ep-3")
        assert outside.by_episode("ep-3") is None and [n.ticket_id for n in told] == [first.id]
        # another thread is not under this thread's guard
        worker = threading.Thread(target=lambda: other_thread.append(
            TicketOps(ops.store).open(device="g", rule="down", at=T0, episode="ep-4")))
        worker.start()
        worker.join(30)
    assert other_thread and outside.by_episode("ep-4") == other_thread[0]
    n = len(checks)
    ops.open(device="h", rule="down", at=T0, episode="ep-5")  # outside the block: no check
    assert len(checks) == n and outside.by_episode("ep-5") is not None


def test_a_transactional_outbox_queues_with_the_unit_or_not_at_all(engine: Engine) -> None:
    """The outbox writing through the store: a unit's notifications are rows of its own transaction, seen by
    the sender together with the tickets (never before, never without them), and the sender is woken after
    the commit; a unit the guard refuses leaves neither."""
    store = TicketStore(engine)
    outbox, reader = SqlOutbox(engine, writing=store.writing), SqlOutbox(engine)
    woken: list[int] = []
    ops = TicketOps(store, lambda n: outbox.put("mail", n, (), T0), transactional=True,
                    after_commit=lambda: woken.append(reader.pending()))
    with ops.unit():
        first = ops.open(device="d", rule="down", at=T0, episode="ep-1")
        second = ops.open(device="e", rule="down", at=T0, episode="ep-2")
        assert reader.pending() == 0 and TicketStore(engine).get(first.id) is None
        told = for_event(first, first.events[0])
        assert told is not None and not outbox.put("mail", told, (), T0)  # the same change: not twice
        assert woken == []
    assert woken == [2] and {i.notification.ticket_id for i in reader.due("mail", T0, 10)} == {first.id, second.id}

    with pytest.raises(RuntimeError, match="half way"), ops.unit():
        third = ops.open(device="f", rule="down", at=T0, episode="ep-3")
        raise RuntimeError("half way")
    assert woken == [2, 3] and TicketStore(engine).get(third.id) == third  # kept, and told

    def refuse(s: Session) -> None:
        raise Fenced("term 1 has ended")

    with ops.store.guarded(refuse), pytest.raises(Fenced), ops.unit():
        ops.open(device="g", rule="down", at=T0, episode="ep-4")
    assert reader.pending() == 3 and TicketStore(engine).by_episode("ep-4") is None and woken == [2, 3]
    ops.open(device="h", rule="down", at=T0, episode="ep-5")  # outside a unit: its own transaction
    assert reader.pending() == 4


def test_a_unit_whose_connection_breaks_ends_and_the_next_write_begins_anew(pg_url: str) -> None:
    """PostgreSQL ends the unit's session mid-way (a broken connection): the write that meets it fails, what
    the unit had not committed is gone with it, and the next write begins a new transaction instead of
    failing on the dead one."""
    eng = create_engine(pg_url)
    TicketStore(eng).create_schema()
    ops, outside = TicketOps(TicketStore(eng)), TicketStore(eng)
    try:
        with ops.unit():
            first = ops.open(device="d", rule="down", at=T0, episode="ep-b1")
            with ops.store.writing() as s:
                pid = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with eng.connect() as other:
                assert other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
            with pytest.raises(DBAPIError):
                ops.open(device="e", rule="down", at=T0, episode="ep-b2")
            third = ops.open(device="f", rule="down", at=T0, episode="ep-b3")
        assert outside.by_episode("ep-b1") is None
        assert third.id == first.id  # the id the lost transaction had taken is free again
        assert outside.by_episode("ep-b2") is None and outside.by_episode("ep-b3") == third
    finally:
        with eng.begin() as conn:
            for table in ("ticket_events", "tickets", "ticket_counters"):
                conn.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608  # fixed table names
        eng.dispose()


def test_maintenance_windows(engine: Engine) -> None:
    store = TicketStore(engine)
    w = store.add_window(devices=["core-sw-1", "ups-1"], start=T0, end=T0 + timedelta(hours=2),
                         created_by="zhang", reason="固件升级")
    store.add_window(devices=["ups-2"], start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1),
                     created_by="li")
    assert store.in_maintenance("core-sw-1", T0 + timedelta(hours=1))
    assert not store.in_maintenance("core-sw-1", T0 + timedelta(hours=2))  # [start, end)
    assert not store.in_maintenance("acc-1", T0 + timedelta(hours=1))
    assert [x.window.reason for x in store.windows(device="ups-1")] == ["固件升级"]
    sched = store.schedule()
    assert sched.window_at("ups-2", T0 + timedelta(days=1, minutes=5)) is not None
    assert w.window.devices == frozenset({"core-sw-1", "ups-1"}) and w.created_by == "zhang"
    assert store.delete_window(w.id) and not store.delete_window(w.id)
    assert not store.in_maintenance("core-sw-1", T0 + timedelta(hours=1))
    with pytest.raises(ValueError, match="end after it starts"):
        store.add_window(devices=["d"], start=T0, end=T0, created_by="x")
