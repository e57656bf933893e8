"""Notifications: one message about one ticket change, with its dedupe key and its Chinese text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from weibao.collector.tickets.model import LEVEL_NAMES_ZH, Action, Ticket, TicketEvent, TicketState
from weibao.core.timeutil import SHANGHAI


class ChangeKind(StrEnum):
    OPENED = "opened"
    PROMOTED = "promoted"
    DUE_SOON = "due_soon"
    BREACHED = "breached"
    RESTORED = "restored"
    REOPENED = "reopened"
    CLOSED = "closed"
    SOLUTION = "solution"    # a solution was handed to the client
    FEEDBACK = "feedback"    # the client answered


_FROM_ACTION = {
    Action.OPEN: ChangeKind.OPENED,
    Action.PROMOTE: ChangeKind.PROMOTED,
    Action.RESTORE: ChangeKind.RESTORED,
    Action.REOPEN: ChangeKind.REOPENED,
    Action.CLOSE: ChangeKind.CLOSED,
    Action.SOLUTION: ChangeKind.SOLUTION,
    Action.FEEDBACK: ChangeKind.FEEDBACK,
}

_CHANGE_ZH = {
    ChangeKind.OPENED: "新故障工单",
    ChangeKind.PROMOTED: "故障升级",
    ChangeKind.DUE_SOON: "时限将到",
    ChangeKind.BREACHED: "已超时限",
    ChangeKind.RESTORED: "故障已恢复",
    ChangeKind.REOPENED: "故障复发，工单重开",
    ChangeKind.CLOSED: "工单已关闭",
    ChangeKind.SOLUTION: "解决方案已提交",
    ChangeKind.FEEDBACK: "客户反馈",
}

CLOCK_ZH = {"response": "响应", "restoration": "恢复", "report": "报告", "onsite": "现场到达"}


def _local(ts: datetime | None) -> str:
    return ts.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if ts is not None else "-"


@dataclass(frozen=True, slots=True)
class Notification:
    """What to tell people about one ticket change. ``key`` is the same for the same change, whoever sends it."""

    ticket_id: str
    change: ChangeKind
    level: int
    device: str
    rule: str
    at: datetime
    affected: tuple[str, ...] = ()
    clock: str | None = None  # "response" | "restoration" | "report" for due_soon / breached
    deadline: datetime | None = None
    round: int = 0  # how often the ticket re-opened: a restoration after a re-open is a new change
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    link: str | None = None  # the ticket's console page (collector config console.base_url)

    @property
    def key(self) -> str:
        """Dedupe key: (ticket id, change, level), refined by clock and round so distinct changes stay apart."""
        return f"{self.ticket_id}|{self.change.value}|{self.level}|{self.clock or '-'}|{self.round}"

    @property
    def title(self) -> str:
        return f"[weibao] {LEVEL_NAMES_ZH[self.level]} {_CHANGE_ZH[self.change]} {self.ticket_id} {self.device}"

    def text(self) -> str:
        """The message body in Chinese, as lines of plain text (Markdown-friendly)."""
        lines = [
            f"{_CHANGE_ZH[self.change]}：工单 {self.ticket_id}",
            f"- 级别：{LEVEL_NAMES_ZH[self.level]}",
            f"- 设备：{self.device}",
            f"- 规则：{self.rule}",
            f"- 时间：{_local(self.at)}",
        ]
        if self.affected:
            lines.append(f"- 受影响设备（{len(self.affected)}）：{', '.join(self.affected)}")
        if self.clock is not None:
            lines.append(f"- 时限：{CLOCK_ZH.get(self.clock, self.clock)}，截止 {_local(self.deadline)}")
        if self.note:
            lines.append(f"- 说明：{self.note}")
        if self.link:
            lines.append(f"- 处理：{self.link}")
        return "\n".join(lines)

    def line(self) -> str:
        """The notification on one line, for digests."""
        parts = [f"- 工单 {self.ticket_id}", LEVEL_NAMES_ZH[self.level], _CHANGE_ZH[self.change],
                 f"设备 {self.device}", _local(self.at)]
        if self.affected:
            parts.append(f"受影响设备 {', '.join(self.affected)}")
        if self.clock is not None:
            parts.append(f"{CLOCK_ZH.get(self.clock, self.clock)}时限截止 {_local(self.deadline)}")
        if self.link:
            parts.append(self.link)
        return "｜".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id, "change": self.change.value, "level": self.level,
            "level_name": LEVEL_NAMES_ZH[self.level], "device": self.device, "rule": self.rule,
            "at": self.at.isoformat(), "affected": list(self.affected), "clock": self.clock,
            "deadline": self.deadline.isoformat() if self.deadline else None, "round": self.round,
            "note": self.note, "link": self.link, "title": self.title, "text": self.text(),
        }


def for_event(ticket: Ticket, event: TicketEvent) -> Notification | None:
    """The notification a ticket event calls for, or None (accept, report, comment, attach: no message)."""
    change = _FROM_ACTION.get(event.kind)
    if change is None:
        return None
    rounds = sum(1 for e in ticket.events[: event.seq + 1] if e.kind is Action.REOPEN)
    return Notification(ticket_id=ticket.id, change=change, level=event.to_level or ticket.level,
                        device=ticket.device, rule=ticket.rule, at=event.at, affected=ticket.affected,
                        round=rounds, note=event.note)


def for_clock(ticket: Ticket, *, change: ChangeKind, clock: str, deadline: datetime | None,
              at: datetime) -> Notification:
    """A due_soon or breached warning for one of the ticket's clocks."""
    if change not in (ChangeKind.DUE_SOON, ChangeKind.BREACHED):
        raise ValueError(f"a clock notification is due_soon or breached, not {change.value}")
    return Notification(ticket_id=ticket.id, change=change, level=ticket.level, device=ticket.device,
                        rule=ticket.rule, at=at, affected=ticket.affected, clock=clock, deadline=deadline,
                        round=ticket.reopen_count)


class ClockLike(Protocol):
    """What alerts need of an SLA clock (weibao.collector.contract.clocks.Clock has it)."""

    @property
    def start(self) -> datetime: ...

    @property
    def deadline(self) -> datetime: ...

    @property
    def met_at(self) -> datetime | None: ...

    @property
    def breached(self) -> bool: ...


def _clock_name(clock: object) -> str:
    name = getattr(clock, "name", "")
    return str(getattr(name, "value", name))


DUE_SOON_FRACTION = 0.2
DUE_SOON_MAX_LEAD = timedelta(hours=1)


def due_soon_lead(start: datetime, deadline: datetime, fraction: float = DUE_SOON_FRACTION,
                  max_lead: timedelta = DUE_SOON_MAX_LEAD) -> timedelta:
    """How long before its deadline a running clock counts as due soon: the last ``fraction`` of its
    length, at most ``max_lead`` (the alerts and the console's colours use the same rule)."""
    return min(max_lead, (deadline - start) * fraction)


def clock_alerts(ticket: Ticket, clocks: Iterable[ClockLike], now: datetime, *,
                 lead_fraction: float = DUE_SOON_FRACTION,
                 max_lead: timedelta = DUE_SOON_MAX_LEAD) -> list[Notification]:
    """due_soon / breached notifications for the ticket's running clocks as of ``now``.

    A clock is due soon in the last ``lead_fraction`` of its length (at most ``max_lead`` before the deadline).
    Safe to call at every evaluation: the dispatcher's dedupe key sends each alert once per level and round.
    """
    if ticket.state is TicketState.CLOSED:
        return []
    out: list[Notification] = []
    for c in clocks:
        name = _clock_name(c)
        if c.breached and (c.met_at is None or c.met_at >= c.deadline):
            out.append(for_clock(ticket, change=ChangeKind.BREACHED, clock=name, deadline=c.deadline, at=now))
        elif (c.met_at is None and now < c.deadline
              and c.deadline - now <= due_soon_lead(c.start, c.deadline, lead_fraction, max_lead)):
            out.append(for_clock(ticket, change=ChangeKind.DUE_SOON, clock=name, deadline=c.deadline, at=now))
    return out


@dataclass(frozen=True, slots=True)
class Message:
    """What a channel sends: one notification, or a digest of several when changes come in a burst."""

    items: tuple[Notification, ...]
    extra_recipients: tuple[str, ...] = ()

    @property
    def level(self) -> int:
        return min(n.level for n in self.items)

    @property
    def title(self) -> str:
        if len(self.items) == 1:
            return self.items[0].title
        return f"[weibao] {len(self.items)} 条工单变更（最高 {LEVEL_NAMES_ZH[self.level]}）"

    def text(self) -> str:
        if len(self.items) == 1:
            return self.items[0].text()
        head = f"{len(self.items)} 条工单变更（短时间内集中发生，合并为一条消息）："
        return "\n".join([head, *(n.line() for n in self.items)])

    def as_json(self) -> dict[str, Any]:
        return {"title": self.title, "text": self.text(), "count": len(self.items),
                "notifications": [n.as_json() for n in self.items]}
