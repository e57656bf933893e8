"""Late data once people have acted on a ticket (README, "Late data"): what people did stays as they did it;
what the samples add comes as events of the system, dated when it happened; a fault that went on after
people closed its ticket is a new ticket from the close. The same whether the data came before or after."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.collector.engine.conftest import World, at
from weibao.collector.tickets import machine
from weibao.collector.tickets.model import SYSTEM, Action, Ticket, TicketState

pytestmark = pytest.mark.timeout(60)
T0 = at("2026-11-24 09:00")


def people(t: Ticket) -> list[tuple[Action, datetime, str, str]]:
    return [(e.kind, e.at, e.actor, e.note) for e in t.events if e.actor != SYSTEM]


def test_a_backlog_after_accept_and_report_promotes_and_restores_but_changes_nothing_people_did(
        world: World) -> None:
    # the core switch is seen down for five minutes, then its agent goes quiet (its link is down)
    world.series("core-1", [0] * 5, T0)
    (ticket,) = world.tickets()
    world.ops.change(ticket.id, lambda t: machine.accept(t, at=at("2026-11-24 09:08"), actor="wang"))
    world.ops.change(ticket.id, lambda t: machine.report(t, at=at("2026-11-24 09:20"), actor="wang",
                                                         note="told the duty officer"))
    before = people(world.store.get(ticket.id))  # type: ignore[arg-type]
    # the backlog: down until 10:29, back at 10:30 (backbone unreachable: level 2 after one hour)
    end = world.series("core-1", [0] * 85 + [1] * 3, at("2026-11-24 09:05"))
    world.sweep(end)
    (after,) = world.tickets()
    assert people(after) == before
    assert (after.accepted_at, after.reported_at) == (at("2026-11-24 09:08"), at("2026-11-24 09:20"))
    assert after.level == 2
    (promote,) = [e for e in after.events if e.kind is Action.PROMOTE]
    assert (promote.at, promote.actor) == (at("2026-11-24 10:00"), SYSTEM)
    (restore,) = [e for e in after.events if e.kind is Action.RESTORE]
    assert (restore.at, restore.actor) == (at("2026-11-24 10:30"), SYSTEM)
    assert after.state is TicketState.RESTORED


@pytest.mark.parametrize("lived", [True, False])
def test_a_fault_that_went_on_after_people_closed_its_ticket_is_a_new_ticket_from_the_close(
        world: World, lived: bool) -> None:
    restored_at, closed_at = at("2026-11-24 09:06"), at("2026-11-24 09:07")

    def act(t: Ticket) -> None:
        world.ops.change(t.id, lambda x: machine.restore(x, at=restored_at, actor="wang", note="rerouted"))
        world.ops.change(t.id, lambda x: machine.close(x, at=closed_at, actor="client-li", note="confirmed"))

    history = [0.0] * 40 + [1.0] * 3  # down 09:00-09:39, back at 09:40
    if lived:  # samples as they come, a sweep after each, people acting at 09:06 and 09:07
        for i, v in enumerate(history):
            t = at("2026-11-24 09:00") + i * (at("2026-11-24 09:01") - T0)
            world.feed("core-1", "up", v, t)
            if i == 7:
                act(world.tickets()[0])
            world.sweep(t)
    else:  # five minutes seen, people act, then the rest as one backlog
        world.series("core-1", history[:5], T0)
        act(world.tickets()[0])
        world.sweep(world.series("core-1", history[5:], at("2026-11-24 09:05")))
    tickets = sorted(world.tickets(), key=lambda t: t.opened_at)
    assert len(tickets) == 2, [(t.id, t.opened_at, t.state) for t in tickets]
    first, again = tickets
    assert first.state is TicketState.CLOSED and first.closed_at == closed_at
    assert people(first)[-2:] == [(Action.RESTORE, restored_at, "wang", "rerouted"),
                                  (Action.CLOSE, closed_at, "client-li", "confirmed")]
    assert (again.device, again.rule, again.opened_at) == ("core-1", "down", closed_at)
    assert f"after {first.id} was closed" in again.events[0].note
    assert (again.state, again.restored_at) == (TicketState.RESTORED, at("2026-11-24 09:40"))


def test_a_fault_that_ended_before_people_closed_its_ticket_opens_nothing_more(world: World) -> None:
    world.series("core-1", [0] * 5, T0)
    (first,) = world.tickets()
    world.ops.change(first.id, lambda x: machine.restore(x, at=at("2026-11-24 09:30"), actor="wang",
                                                         note="replaced the module"))
    world.ops.change(first.id, lambda x: machine.close(x, at=at("2026-11-24 09:31"), actor="client-li"))
    end = world.series("core-1", [0] * 20 + [1] * 10, at("2026-11-24 09:05"))  # back at 09:25
    world.sweep(end)
    (only,) = world.tickets()
    assert only.id == first.id and only.state is TicketState.CLOSED


@pytest.mark.parametrize("lived", [True, False])
def test_a_workaround_restore_ends_promotions_while_the_device_stays_down(world: World, lived: bool) -> None:
    # the core switch is down 09:00-10:29 (backbone unreachable: level 2 after one hour, at 10:00); an engineer
    # restores service by a workaround at 09:30, so the fault ends for the contract then: no promotion at 10:00
    history = [0.0] * 90 + [1.0] * 3
    restored_at = at("2026-11-24 09:30")

    def act(t: Ticket) -> None:
        world.ops.change(t.id, lambda x: machine.restore(x, at=restored_at, actor="wang", note="rerouted"))

    if lived:
        for i, v in enumerate(history):
            t = T0 + i * (at("2026-11-24 09:01") - T0)
            world.feed("core-1", "up", v, t)
            if i == 31:
                act(world.tickets()[0])
            world.sweep(t)
    else:
        world.series("core-1", history[:5], T0)
        act(world.tickets()[0])
        world.sweep(world.series("core-1", history[5:], at("2026-11-24 09:05")))
    (only,) = world.tickets()
    assert only.level == 3
    assert [e for e in only.events if e.kind is Action.PROMOTE] == []
    assert (only.state, only.restored_at) == (TicketState.RESTORED, restored_at)
