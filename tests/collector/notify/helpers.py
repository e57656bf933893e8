"""Tickets and notifications shared by the notify tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from weibao.collector.notify.model import Notification, for_event
from weibao.collector.tickets import machine as m
from weibao.collector.tickets.model import Ticket

CST = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=CST)


def root_cause_ticket(ticket_id: str = "20261125-0001") -> Ticket:
    """A level-2 ticket on a core switch with two access switches attached as affected."""
    t = m.open_ticket(ticket_id=ticket_id, device="core-sw-1", rule="backbone_unreachable", level=3, at=T0).ticket
    t = m.attach_affected(t, devices=["acc-sw-1", "acc-sw-2"], at=T0 + timedelta(minutes=1)).ticket
    return m.promote(t, level=2, at=T0 + timedelta(hours=1), note="down >= 1 h").ticket


def opened(ticket_id: str, level: int = 3, device: str = "srv-1") -> Notification:
    t = m.open_ticket(ticket_id=ticket_id, device=device, rule="business_down_working", level=level, at=T0)
    n = for_event(t.ticket, t.event)
    assert n is not None
    return n
