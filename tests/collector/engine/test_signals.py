"""Evaluator signals -> tickets, with the real evaluator, the shipped rules and a real SQLite ticket store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.collector.engine.conftest import AGENT, CHECKS, DEVICES, RULES, World, at
from weibao.collector.contract import Evaluator
from weibao.collector.engine.extras import Extras
from weibao.collector.notify.model import ChangeKind
from weibao.collector.tickets import machine
from weibao.collector.tickets.model import Action, TicketState
from weibao.core.model import Sample

pytestmark = pytest.mark.timeout(60)


def test_down_opens_level_3_and_good_samples_restore(world: World) -> None:
    t = world.series("core-1", [1, 1] + [0] * 9 + [1, 1, 1], at("2026-11-24 09:00"))
    assert t == at("2026-11-24 09:14")
    (ticket,) = world.tickets()
    assert (ticket.device, ticket.rule, ticket.level) == ("core-1", "down", 3)
    assert ticket.opened_at == at("2026-11-24 09:02")
    assert ticket.state is TicketState.RESTORED
    assert ticket.restored_at == at("2026-11-24 09:11")  # the first of the three good samples
    assert [n.change for n in world.notes] == [ChangeKind.OPENED, ChangeKind.RESTORED]


def test_promoted_as_soon_as_the_single_row_holds(world: World) -> None:
    # backbone-unreachable: level 2 after 1 h of one episode, any hours
    end = world.series("core-1", [0] * 70, at("2026-11-24 09:00"))
    world.sweep(end)
    (ticket,) = world.tickets()
    assert ticket.level == 2
    promote = [e for e in ticket.events if e.kind is Action.PROMOTE]
    assert len(promote) == 1 and promote[0].at == at("2026-11-24 10:00")
    assert "backbone-unreachable" in promote[0].note
    world.sweep(end)  # nothing new: levels only rise, once
    assert world.store.get(ticket.id) == ticket
    # nobody accepted it: the level-2 response clock (10 min from 09:00) is breached, told once
    assert [(n.change, n.clock) for n in world.notes] == [
        (ChangeKind.OPENED, None), (ChangeKind.PROMOTED, None), (ChangeKind.BREACHED, "response")]


def test_fault_back_within_the_window_reopens_the_same_ticket(world: World) -> None:
    t = world.series("core-1", [0] * 4 + [1] * 3, at("2026-11-24 09:00"))
    (ticket,) = world.tickets()
    assert ticket.state is TicketState.RESTORED
    world.ops.change(ticket.id, lambda x: machine.accept(x, at=t, actor="wang"))
    world.series("core-1", [1] * 10 + [0, 0], t)
    (again,) = world.tickets()
    assert again.id == ticket.id
    assert again.state is TicketState.ACCEPTED  # it had been accepted: the response was given
    assert again.restored_at is None
    assert [e.kind for e in again.events][-1] is Action.REOPEN


@pytest.mark.parametrize("upstream_first", [True, False])
def test_upstream_down_one_ticket_with_affected(world: World, upstream_first: bool) -> None:
    t = at("2026-11-24 09:00")
    for _ in range(5):
        order = ["core-1", "acc-1", "acc-2"] if upstream_first else ["acc-2", "acc-1", "core-1"]
        for d in order:
            world.feed(d, "up", 0, t)
        t += timedelta(minutes=1)
    live = world.store.find(state=[TicketState.OPEN, TicketState.ACCEPTED])
    assert [(x.device, sorted(x.affected)) for x in live] == [("core-1", ["acc-1", "acc-2"])]
    folded = world.store.find(state=TicketState.CLOSED)
    assert {x.device for x in folded} == (set() if upstream_first else {"acc-1", "acc-2"})
    assert all(f"ticket {live[0].id}" in x.events[-1].note for x in folded)


def test_downstream_down_later_is_attached(world: World) -> None:
    t = world.series("core-1", [0] * 3, at("2026-11-24 09:00"))
    world.feed("core-1", "up", 0, t)
    world.feed("acc-1", "up", 0, t)
    (ticket,) = world.tickets()
    assert ticket.device == "core-1" and ticket.affected == ("acc-1",)
    assert [e.kind for e in ticket.events] == [Action.OPEN, Action.ATTACH_AFFECTED]


@pytest.mark.parametrize("up_first", [True, False])
def test_a_device_down_is_not_also_a_loss_fault(world: World, up_first: bool) -> None:
    t = at("2026-11-24 09:00")
    for _ in range(5):
        pair = [("up", 0.0), ("icmp.loss_pct", 100.0)]
        for metric, value in pair if up_first else reversed(pair):
            world.feed("core-1", metric, value, t)
        t += timedelta(minutes=1)
    live = world.store.find(state=[TicketState.OPEN, TicketState.ACCEPTED])
    assert [(x.device, x.rule) for x in live] == [("core-1", "down")]


def test_silence_is_a_gap_ticket_for_the_agent_not_an_outage(world: World) -> None:
    t = world.series("biz-1", [1] * 6, at("2026-11-24 09:00"))
    world.sweep(t + timedelta(minutes=15))
    (ticket,) = world.tickets()
    assert (ticket.device, ticket.rule, ticket.affected) == (AGENT, "agent_gap", ("biz-1",))
    assert ticket.opened_at == at("2026-11-24 09:06")  # last sample + one probe interval
    world.series("biz-1", [1, 1], t + timedelta(minutes=16))
    (ticket,) = world.tickets()
    assert ticket.state is TicketState.RESTORED
    assert not [x for x in world.tickets() if x.rule == "down"]


def test_ups_on_battery_trap_opens_at_once_and_a_poll_restores(world: World) -> None:
    t = at("2026-11-24 22:00")
    world.extras.event("ups-1", "trap", t, {"trap": "upsTrapOnBattery", "oid": "1.3.6.1.2.1.33.2.1"})
    (ticket,) = world.tickets()
    assert (ticket.device, ticket.rule, ticket.level, ticket.opened_at) == ("ups-1", "ups_on_battery", 3, t)
    world.extras.event("ups-1", "trap", t + timedelta(seconds=5), {"trap": "apcUpsOnBattery"})
    assert len(world.tickets()) == 1
    world.extras.sample(Sample("ups-1", "ups.on_battery", 0.0, t + timedelta(minutes=3)), "ups")
    (ticket,) = world.tickets()
    assert ticket.state is TicketState.RESTORED


def test_inspection_danger_that_persists_a_day_opens_a_ticket(world: World) -> None:
    t0 = at("2026-11-23 08:00")
    for h in range(26):
        world.extras.sample(Sample("biz-1", "cpu.util_pct", 85.0, t0 + timedelta(hours=h)), "switch")
    (ticket,) = world.tickets()
    assert (ticket.rule, ticket.level, ticket.opened_at) == ("cpu.high", 3, t0 + timedelta(hours=24))
    world.extras.sample(Sample("biz-1", "cpu.util_pct", 20.0, t0 + timedelta(hours=27)), "switch")
    assert world.tickets()[0].state is TicketState.RESTORED


def test_a_restart_keeps_the_danger_count(world: World) -> None:
    t0 = at("2026-11-23 08:00")
    for h in range(20):  # 08:00 .. next day 03:00: 19 h held
        world.extras.sample(Sample("biz-1", "cpu.util_pct", 85.0, t0 + timedelta(hours=h)), "switch")
    assert world.tickets() == []
    # the engine restarts: a new Extras on the same store, the count goes on from 08:00
    again = Extras(world.ops, CHECKS, RULES.inspection_danger_after, RULES.evaluation.reopen_window)
    for h in range(20, 25):
        again.sample(Sample("biz-1", "cpu.util_pct", 85.0, t0 + timedelta(hours=h)), "switch")
    (ticket,) = world.tickets()
    assert (ticket.rule, ticket.opened_at) == ("cpu.high", t0 + timedelta(hours=24))
    # back within limits: the timer goes, and a later restart starts from nothing
    again.sample(Sample("biz-1", "cpu.util_pct", 20.0, t0 + timedelta(hours=25)), "switch")
    fresh = Extras(world.ops, CHECKS, RULES.inspection_danger_after, RULES.evaluation.reopen_window)
    fresh.sample(Sample("biz-1", "cpu.util_pct", 85.0, t0 + timedelta(hours=26)), "switch")
    fresh.sample(Sample("biz-1", "cpu.util_pct", 85.0, t0 + timedelta(hours=49)), "switch")  # 23 h
    assert len(world.tickets()) == 1


def test_a_batch_stores_its_danger_timers_at_its_end(world: World) -> None:
    t0 = at("2026-11-23 08:00")

    def restarted() -> Extras:
        return Extras(world.ops, CHECKS, RULES.inspection_danger_after, RULES.evaluation.reopen_window)

    with world.extras.batch():
        world.extras.sample(Sample("biz-1", "cpu.util_pct", 85.0, t0), "switch")
        world.extras.sample(Sample("biz-2", "cpu.util_pct", 85.0, t0), "switch")
        world.extras.sample(Sample("biz-2", "cpu.util_pct", 20.0, t0 + timedelta(minutes=1)), "switch")
        assert restarted()._since == {}  # not stored yet
    # biz-1's timer was kept, biz-2's started and stopped within the batch: nothing of it is left
    assert list(restarted()._since) == [("biz-1", "cpu.high", "{}")]
    assert restarted()._since[("biz-1", "cpu.high", "{}")] == t0


def test_resync_after_restart_opens_nothing_twice(world: World) -> None:
    samples = [Sample("core-1", "up", 0.0, at("2026-11-24 09:00") + timedelta(minutes=i)) for i in range(90)]
    for s in samples:
        world.sync.handle(world.ev.observe(s), world.ev, world.book, s.ts)
    now = samples[-1].ts
    world.sweep(now)
    before = world.tickets()
    assert [(x.level, x.state) for x in before] == [(2, TicketState.OPEN)]
    fresh = Evaluator(RULES, DEVICES)  # what a restart rebuilds from the stored samples
    for s in samples:
        fresh.observe(s)
    for ep in fresh.open_episodes(now):
        world.sync.sync(ep, fresh, now, allow_ended=False)
    assert world.tickets() == before
