"""Notifications from ticket events and from the contract core's clocks; dedupe keys; Chinese text."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.collector.notify.helpers import T0, root_cause_ticket
from weibao.collector.contract.calendar_files import load_calendar
from weibao.collector.contract.rules import load_contract_rules
from weibao.collector.notify.model import ChangeKind, clock_alerts, for_event
from weibao.collector.tickets import machine as m
from weibao.collector.tickets.views import ticket_clocks

RULES = Path(__file__).resolve().parents[3] / "rules" / "contract.yaml"


def test_events_that_notify() -> None:
    t = root_cause_ticket()
    t = m.accept(t, at=T0 + timedelta(hours=1, minutes=1), actor="zhang").ticket
    t = m.report(t, at=T0 + timedelta(hours=1, minutes=2), actor="zhang").ticket
    t = m.restore(t, at=T0 + timedelta(hours=2)).ticket
    t = m.close(t, at=T0 + timedelta(days=1), actor="client").ticket
    changes = [(n.change, n.level) for e in t.events if (n := for_event(t, e)) is not None]
    assert changes == [(ChangeKind.OPENED, 3), (ChangeKind.PROMOTED, 2), (ChangeKind.RESTORED, 2),
                       (ChangeKind.CLOSED, 2)]
    n = for_event(t, t.events[2])  # the promotion
    assert n is not None and n.key == "20261125-0001|promoted|2|-|0"
    assert n.affected == ("acc-sw-1", "acc-sw-2")
    assert n.text().splitlines()[:3] == ["故障升级：工单 20261125-0001", "- 级别：二级（严重）", "- 设备：core-sw-1"]


def test_clock_alerts_from_the_contract_clocks() -> None:
    cal, limits = load_calendar(), load_contract_rules(RULES).clocks
    t = m.promote(m.open_ticket(ticket_id="T-1", device="d", rule="r", level=3, at=T0).ticket,
                  level=2, at=T0 + timedelta(minutes=1)).ticket
    # contract.md: promoted at 10:01 while the response clock runs, it ends at min(10:20, 10:01 + 10 min) =
    # 10:11; the last 20 % of its 11 minutes (2.2 min, from 10:08:48) is "due soon"
    for minutes, expected in ((7, []), (8.5, []), (9, [(ChangeKind.DUE_SOON, "response")]),
                              (11, [(ChangeKind.BREACHED, "response")])):
        now = T0 + timedelta(minutes=minutes)
        alerts = clock_alerts(t, ticket_clocks(t, calendar=cal, limits=limits, now=now), now)
        assert [(a.change, a.clock) for a in alerts] == expected, minutes
    alert = clock_alerts(t, ticket_clocks(t, calendar=cal, limits=limits, now=T0 + timedelta(minutes=11)),
                         T0 + timedelta(minutes=11))[0]
    assert alert.deadline == T0 + timedelta(minutes=11) and "响应，截止 2026-11-25 10:11" in alert.text()
    accepted = m.accept(t, at=T0 + timedelta(minutes=5), actor="zhang").ticket
    now = T0 + timedelta(minutes=10)
    assert clock_alerts(accepted, ticket_clocks(accepted, calendar=cal, limits=limits, now=now), now) == []
