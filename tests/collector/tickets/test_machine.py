"""The ticket state machine: every legal and illegal transition, levels, re-open, auto-close, history."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from weibao.collector.tickets import machine as m
from weibao.collector.tickets.model import (
    AUTO_CLOSE_AFTER,
    SYSTEM,
    TRANSITIONS,
    Action,
    IllegalTransition,
    Ticket,
    TicketKind,
    TicketState,
)

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=CST)
S = TicketState


def opened(level: int = 3) -> Ticket:
    return m.open_ticket(ticket_id="20261125-0001", device="core-sw-1", rule="backbone_unreachable",
                         level=level, at=T0, episode="ep-1").ticket


def in_state(state: TicketState) -> Ticket:
    t = opened()
    if state is S.OPEN:
        return t
    t = m.accept(t, at=T0 + timedelta(minutes=3), actor="zhang").ticket
    if state is S.ACCEPTED:
        return t
    t = m.restore(t, at=T0 + timedelta(minutes=30), actor=SYSTEM).ticket
    if state is S.RESTORED:
        return t
    return m.close(t, at=T0 + timedelta(minutes=35), actor="client").ticket


AT = T0 + timedelta(minutes=40)  # inside the default re-open window of a restoration at +30 min
DO: dict[Action, Callable[[Ticket], m.Change]] = {
    Action.PROMOTE: lambda t: m.promote(t, level=t.level - 1, at=AT),
    Action.ACCEPT: lambda t: m.accept(t, at=AT, actor="li"),
    Action.RESTORE: lambda t: m.restore(t, at=AT, actor="li", note="switched to the standby link"),
    Action.REPORT: lambda t: m.report(t, at=AT, actor="li", note="phoned the client's duty officer"),
    Action.COMMENT: lambda t: m.comment(t, at=AT, actor="li", note="waiting for spare part"),
    Action.CLOSE: lambda t: m.close(t, at=AT, actor="client", note="client confirmed"),
    Action.REOPEN: lambda t: m.reopen(t, at=AT),
    Action.ATTACH_AFFECTED: lambda t: m.attach_affected(t, devices=["access-sw-7"], at=AT),
    Action.SOLUTION: lambda t: m.solution(t, at=AT, actor="li", note="replaced the power supply"),
    Action.FEEDBACK: lambda t: m.feedback(t, at=AT, actor="client", note="still slow at night"),
    Action.PAUSE: lambda t: m.pause(t, at=AT, actor="li", note="handed to the application team"),
    Action.RESUME: lambda t: m.resume(t, at=AT, actor="li"),
    Action.DISPATCH: lambda t: m.dispatch(t, at=AT, actor="li", note="Zhang to the server room"),
    Action.ONSITE: lambda t: m.onsite(t, at=AT, actor="zhang"),
}

# What an engineer bound by the contract expects (written out here, not read from TRANSITIONS).
# A resume needs a pause first, an arrival on site a dispatch, the client's feedback a solution: from a plain
# ticket they are refused.
# Monitoring adds affected devices it learns of late to any ticket, a closed one too (an addition).
LEGAL: dict[TicketState, dict[Action, TicketState]] = {
    S.OPEN: {Action.PROMOTE: S.OPEN, Action.ACCEPT: S.ACCEPTED, Action.RESTORE: S.RESTORED,
             Action.COMMENT: S.OPEN, Action.ATTACH_AFFECTED: S.OPEN, Action.PAUSE: S.OPEN,
             Action.DISPATCH: S.OPEN},
    S.ACCEPTED: {Action.PROMOTE: S.ACCEPTED, Action.RESTORE: S.RESTORED, Action.REPORT: S.ACCEPTED,
                 Action.COMMENT: S.ACCEPTED, Action.ATTACH_AFFECTED: S.ACCEPTED, Action.SOLUTION: S.RESTORED,
                 Action.PAUSE: S.ACCEPTED, Action.DISPATCH: S.ACCEPTED},
    S.RESTORED: {Action.PROMOTE: S.RESTORED, Action.REPORT: S.RESTORED, Action.COMMENT: S.RESTORED,
                 Action.CLOSE: S.CLOSED, Action.REOPEN: S.ACCEPTED, Action.ATTACH_AFFECTED: S.RESTORED,
                 Action.SOLUTION: S.RESTORED},
    S.CLOSED: {Action.COMMENT: S.CLOSED, Action.ATTACH_AFFECTED: S.CLOSED},
}

CASES = [(state, action) for state in S for action in DO]


@pytest.mark.parametrize(("state", "action"), CASES, ids=[f"{s.value}-{a.value}" for s, a in CASES])
def test_every_transition(state: TicketState, action: Action) -> None:
    before = in_state(state)
    if action in LEGAL[state]:
        after, event = DO[action](before)
        assert after.state is LEGAL[state][action]
        assert event.kind is action and event.from_state is state and event.to_state is after.state
        assert event.at == AT and event.actor
        assert after.events == (*before.events, event)
        assert event.seq == len(before.events)
    else:
        with pytest.raises(IllegalTransition) as err:
            DO[action](before)
        assert err.value.state is state and err.value.action is action
        assert before.id in str(err.value) and state.value in str(err.value) and action.value in str(err.value)


def test_table_matches_expectations() -> None:
    for state in S:
        for action in Action:
            targets = TRANSITIONS.get((state, action), frozenset())
            expected = LEGAL[state].get(action)
            # acknowledging a restored fault; resuming a pause and arriving after a dispatch need the step
            # before them, which the table allows and the machine checks
            needs_a_step = action in (Action.RESUME, Action.ONSITE, Action.FEEDBACK)
            if expected is None and not (state is S.RESTORED and action is Action.ACCEPT) and not needs_a_step:
                assert not targets, (state, action)
            elif expected is not None:
                assert expected in targets, (state, action)
    assert TRANSITIONS[(None, Action.OPEN)] == {S.OPEN}
    assert all(not m.allowed(s, Action.OPEN) for s in S)


def test_open_ticket_event() -> None:
    t = m.open_ticket(ticket_id="x-1", device="core-sw-1", rule="r", level=2, at=T0,
                      affected=["core-sw-1", "a", "b", "a"])
    assert t.ticket.state is S.OPEN and t.ticket.opened_at == T0 and t.ticket.level == 2
    assert t.ticket.affected == ("a", "b")  # own device and duplicates dropped
    assert t.event.kind is Action.OPEN and t.event.from_state is None and t.event.to_state is S.OPEN
    assert t.event.actor == SYSTEM and t.event.to_level == 2
    with pytest.raises(IllegalTransition, match="level must be one of"):
        m.open_ticket(ticket_id="x-2", device="d", rule="r", level=4, at=T0)


def test_restored_before_anyone_accepted_can_still_be_accepted_once() -> None:
    t = m.restore(opened(), at=T0 + timedelta(minutes=2)).ticket
    assert t.state is S.RESTORED and t.accepted_at is None
    t2 = m.accept(t, at=T0 + timedelta(minutes=4), actor="zhang").ticket
    assert t2.state is S.RESTORED and t2.accepted_at == T0 + timedelta(minutes=4)
    with pytest.raises(IllegalTransition, match="already accepted"):
        m.accept(t2, at=T0 + timedelta(minutes=5), actor="li")


def test_levels_only_rise_and_promotion_is_an_event() -> None:
    t = opened(level=3)
    t, e = m.promote(t, level=2, at=T0 + timedelta(hours=1), note="down >= 1 h in working hours")
    assert (t.level, e.kind, e.from_level, e.to_level, e.actor) == (2, Action.PROMOTE, 3, 2, SYSTEM)
    for lower in (2, 3):
        with pytest.raises(IllegalTransition, match="levels only rise"):
            m.promote(t, level=lower, at=T0 + timedelta(hours=2))
    t, e = m.promote(t, level=1, at=T0 + timedelta(hours=2))
    assert t.level == 1 and (e.from_level, e.to_level) == (2, 1)
    with pytest.raises(IllegalTransition):
        m.promote(t, level=0, at=T0 + timedelta(hours=3))
    # nothing else lowers it: every later action keeps level 1
    t = m.accept(t, at=T0 + timedelta(hours=3), actor="zhang").ticket
    t = m.restore(t, at=T0 + timedelta(hours=4)).ticket
    assert t.level == 1 and all(e.to_level is None or e.to_level <= (e.from_level or 3) for e in t.events)


def test_reopen_within_window_keeps_the_ticket() -> None:
    t = in_state(S.RESTORED)
    restored = t.restored_at
    assert restored is not None
    window = timedelta(minutes=30)
    assert m.reopen_due(t, restored + window, window=window)
    assert not m.reopen_due(t, restored + window + timedelta(seconds=1), window=window)
    t2, e = m.reopen(t, at=restored + timedelta(minutes=10), window=window, note="link down again")
    assert t2.id == t.id and t2.state is S.ACCEPTED and t2.restored_at is None
    assert t2.accepted_at == t.accepted_at and e.kind is Action.REOPEN and t2.reopen_count == 1
    with pytest.raises(IllegalTransition, match="outside the re-open window"):
        m.reopen(t, at=restored + timedelta(minutes=31), window=window)
    # a ticket nobody had accepted re-opens as OPEN
    t3 = m.restore(opened(), at=T0 + timedelta(minutes=1)).ticket
    assert m.reopen(t3, at=T0 + timedelta(minutes=2)).ticket.state is S.OPEN


def test_auto_close_two_weeks_after_the_solution_without_feedback() -> None:
    t = in_state(S.RESTORED)  # restored by monitoring at +30 min: not a solution, never closes by itself
    assert timedelta(days=14) == AUTO_CLOSE_AFTER
    assert not m.auto_close_due(t, T0 + timedelta(days=60))
    solved = T0 + timedelta(hours=2)
    t = m.solution(t, at=solved, actor="li", note="replaced the power supply; spare ordered").ticket
    assert (t.state, t.solution_at, t.restored_at) == (S.RESTORED, solved, T0 + timedelta(minutes=30))
    almost = solved + timedelta(days=14) - timedelta(seconds=1)
    assert not m.auto_close_due(t, almost)
    with pytest.raises(IllegalTransition, match="not quiet"):
        m.auto_close(t, now=almost)
    # a later comment (ours, or a promotion) does not move the two weeks
    commented = m.comment(t, at=solved + timedelta(days=10), actor="li", note="client called, no answer").ticket
    t2, e = m.auto_close(commented, now=solved + timedelta(days=15))
    assert t2.state is S.CLOSED and t2.closed_at == solved + timedelta(days=14)
    assert e.actor == SYSTEM and e.kind is Action.CLOSE and "14" in e.note
    # the client answered without confirming: there was feedback, so the ticket waits for the next solution
    answered = m.feedback(t, at=solved + timedelta(days=10), actor="client", note="still slow at night").ticket
    assert answered.auto_close_from is None
    assert not m.auto_close_due(answered, solved + timedelta(days=60))
    # whose two weeks count from it
    again = solved + timedelta(days=12)
    resolved = m.solution(answered, at=again, actor="li", note="night backup moved to 02:00").ticket
    assert not m.auto_close_due(resolved, again + timedelta(days=14) - timedelta(seconds=1))
    assert m.auto_close(resolved, now=again + timedelta(days=20)).ticket.closed_at == again + timedelta(days=14)
    # a feedback and the next solution at the same moment (times are never earlier than the ticket's last):
    # the order of the events decides
    same = solved + timedelta(days=11)
    told = m.feedback(t, at=same, actor="client", note="still slow").ticket
    told = m.solution(told, at=same, actor="li", note="moved the backup").ticket
    assert told.auto_close_from == same
    # only restored tickets close by themselves
    assert not m.auto_close_due(in_state(S.ACCEPTED), T0 + timedelta(days=60))


def test_the_client_answers_a_solution_only() -> None:
    t = in_state(S.RESTORED)  # restored by monitoring, no solution handed over
    with pytest.raises(IllegalTransition, match="no solution"):
        m.feedback(t, at=T0 + timedelta(hours=1), actor="client", note="is it fixed?")
    with pytest.raises(IllegalTransition, match="no solution"):
        m.confirm(t, at=T0 + timedelta(hours=1), actor="client")
    t = m.solution(t, at=T0 + timedelta(hours=1), actor="li", note="replaced the power supply").ticket
    closed = m.confirm(t, at=T0 + timedelta(hours=2), actor="client").ticket
    assert closed.state is S.CLOSED and closed.events[-1].actor == "client"


def test_a_solution_restores_a_request() -> None:
    req = m.open_ticket(ticket_id="r-1", device="", rule="guidance", level=3, at=T0, actor="client",
                        kind=TicketKind.GUIDANCE, summary="How do we add a VLAN?").ticket
    assert req.opened_by == "client" and req.kind is TicketKind.GUIDANCE
    with pytest.raises(IllegalTransition):
        m.solution(req, at=T0 + timedelta(minutes=5), actor="li", note="steps sent by mail")  # not accepted
    req = m.accept(req, at=T0 + timedelta(minutes=5), actor="li").ticket
    with pytest.raises(IllegalTransition, match="needs"):
        m.solution(req, at=T0 + timedelta(minutes=30), actor="li", note=" ")
    req = m.solution(req, at=T0 + timedelta(minutes=30), actor="li", note="steps sent by mail").ticket
    assert req.state is S.RESTORED and req.restored_at == req.solution_at == T0 + timedelta(minutes=30)


def test_pause_and_resume_are_intervals_on_the_ticket() -> None:
    t = in_state(S.ACCEPTED)
    t = m.pause(t, at=T0 + timedelta(minutes=10), actor="li", note="handed to the ERP vendor").ticket
    assert t.paused
    with pytest.raises(IllegalTransition, match="already paused"):
        m.pause(t, at=T0 + timedelta(minutes=11), actor="li", note="again")
    t = m.resume(t, at=T0 + timedelta(hours=2), actor="li").ticket
    assert not t.paused and t.pauses == ((T0 + timedelta(minutes=10), T0 + timedelta(hours=2),
                                          "handed to the ERP vendor"),)
    with pytest.raises(IllegalTransition, match="not paused"):
        m.resume(t, at=T0 + timedelta(hours=3), actor="li")
    with pytest.raises(IllegalTransition, match="needs"):
        m.pause(t, at=T0 + timedelta(hours=3), actor="li", note="")


def test_dispatch_then_on_site() -> None:
    t = in_state(S.ACCEPTED)
    with pytest.raises(IllegalTransition, match="nobody was dispatched"):
        m.onsite(t, at=T0 + timedelta(minutes=20), actor="zhang")
    t = m.dispatch(t, at=T0 + timedelta(minutes=5), actor="li", note="Zhang").ticket
    with pytest.raises(IllegalTransition, match="already dispatched"):
        m.dispatch(t, at=T0 + timedelta(minutes=6), actor="li")
    t = m.onsite(t, at=T0 + timedelta(minutes=25), actor="zhang").ticket
    assert (t.dispatched_at, t.onsite_at) == (T0 + timedelta(minutes=5), T0 + timedelta(minutes=25))
    with pytest.raises(IllegalTransition, match="already on site"):
        m.onsite(t, at=T0 + timedelta(minutes=30), actor="zhang")


def test_late_facts_keep_their_time_and_people_cannot_backdate() -> None:
    t = in_state(S.ACCEPTED)  # accepted at +3 min by zhang
    t = m.comment(t, at=T0 + timedelta(minutes=50), actor="zhang", note="on the phone with the ISP").ticket
    # the agent's backlog shows the link came back at +40 min: added with its own time
    back = T0 + timedelta(minutes=40)
    late = m.restore(t, at=back, recorded=T0 + timedelta(hours=3)).ticket
    assert late.restored_at == back and late.events[-1].recorded_at == T0 + timedelta(hours=3)
    assert late.accepted_at == t.accepted_at and late.events[:-1] == t.events  # nothing people did changed
    with pytest.raises(IllegalTransition, match="before the ticket's last change"):
        m.comment(t, at=T0 + timedelta(minutes=45), actor="zhang", note="earlier")
    with pytest.raises(IllegalTransition, match="before the ticket was opened"):
        m.attach_affected(t, devices=["acc-9"], at=T0 - timedelta(minutes=1))


def test_every_change_is_an_event_with_time_and_actor() -> None:
    t = opened()
    steps: list[Callable[[Ticket], m.Change]] = [
        lambda t: m.attach_affected(t, devices=["acc-1", "acc-2"], at=T0 + timedelta(minutes=1)),
        lambda t: m.accept(t, at=T0 + timedelta(minutes=4), actor="zhang"),
        lambda t: m.promote(t, level=2, at=T0 + timedelta(hours=1)),
        lambda t: m.report(t, at=T0 + timedelta(hours=1, minutes=10), actor="zhang"),
        lambda t: m.restore(t, at=T0 + timedelta(hours=2), actor="zhang", note="replaced the PSU"),
        lambda t: m.reopen(t, at=T0 + timedelta(hours=2, minutes=5)),
        lambda t: m.restore(t, at=T0 + timedelta(hours=3)),
        lambda t: m.close(t, at=T0 + timedelta(days=2), actor="client"),
        lambda t: m.comment(t, at=T0 + timedelta(days=3), actor="wang", note="archived"),
    ]
    for step in steps:
        t = step(t).ticket
    assert len(t.events) == 1 + len(steps)
    assert [e.seq for e in t.events] == list(range(len(t.events)))
    assert all(e.at.tzinfo is not None and e.actor for e in t.events)
    assert [e.at for e in t.events] == sorted(e.at for e in t.events)
    for prev, cur in zip(t.events, t.events[1:], strict=False):
        assert cur.from_state is prev.to_state and cur.from_level == prev.to_level
    assert t.affected == ("acc-1", "acc-2") and t.events[1].devices == ("acc-1", "acc-2")
    assert t.reported_at == T0 + timedelta(hours=1, minutes=10)
    assert t.restored_at == T0 + timedelta(hours=3) and t.closed_at == T0 + timedelta(days=2)


def test_guards() -> None:
    t = in_state(S.ACCEPTED)
    with pytest.raises(IllegalTransition, match="must say how"):
        m.restore(t, at=AT, actor="li")
    with pytest.raises(IllegalTransition, match="UTC offset"):
        m.comment(t, at=datetime(2026, 11, 25, 10, 0), actor="li", note="x")
    with pytest.raises(IllegalTransition, match="before the ticket's last change"):
        m.comment(t, at=T0 - timedelta(minutes=1), actor="li", note="x")
    with pytest.raises(IllegalTransition, match="needs an actor"):
        m.comment(t, at=AT, actor="", note="x")
    with pytest.raises(IllegalTransition, match="needs text"):
        m.comment(t, at=AT, actor="li", note="  ")
    r = m.report(t, at=AT, actor="li").ticket
    with pytest.raises(IllegalTransition, match="already reported"):
        m.report(r, at=AT, actor="li")
    a = m.attach_affected(t, devices=["acc-1"], at=AT).ticket
    with pytest.raises(IllegalTransition, match="already listed"):
        m.attach_affected(a, devices=["acc-1", "core-sw-1"], at=AT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.level = 1  # type: ignore[misc]


@pytest.mark.parametrize("note", ["", "   ", "\u3000", "\u200b\u200b", "\x00", "\t\x01\n"])
def test_a_note_that_shows_nothing_is_no_note(note: str) -> None:
    t = opened()
    with pytest.raises(IllegalTransition, match="must say how"):
        m.restore(t, at=T0 + timedelta(minutes=5), actor="wang", note=note)
    with pytest.raises(IllegalTransition, match="needs text"):
        m.comment(t, at=T0 + timedelta(minutes=5), actor="wang", note=note)
    m.restore(t, at=T0 + timedelta(minutes=5), actor="wang", note="重启 ok")  # any visible text is a note
