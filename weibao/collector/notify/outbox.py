"""The notification outbox: one row per (channel, notification), deduplicated, kept until sent or given up.

``SqlOutbox`` keeps the queue in the state database, so messages queued before a restart are sent after it;
``MemoryOutbox`` is the same thing for tests and runs without a database. The unique (channel, key) pair is
what makes a change that is reported twice (a replay, a restart) a single message.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import BigInteger, Engine, Integer, String, Text, UniqueConstraint, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from weibao.collector.notify.model import ChangeKind, Notification
from weibao.collector.state.models import Base
from weibao.core.timeutil import SHANGHAI, from_ms, to_ms


class Status(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    channel: str
    notification: Notification
    extra_recipients: tuple[str, ...]
    attempts: int
    next_at: datetime
    status: Status = Status.PENDING
    last_error: str = ""


class Outbox(Protocol):
    def put(self, channel: str, n: Notification, extra: tuple[str, ...], now: datetime) -> bool:
        """Queue ``n`` for ``channel``; False when the same change is already queued (or sent) there."""

    def due(self, channel: str, now: datetime, limit: int) -> list[OutboxItem]:
        """Pending items of ``channel`` whose time has come, oldest first."""

    def mark_sent(self, ids: list[int], now: datetime) -> None: ...

    def mark_retry(self, ids: list[int], attempts: int, next_at: datetime, error: str) -> None: ...

    def mark_failed(self, ids: list[int], attempts: int, error: str) -> None: ...

    def pending(self) -> int: ...


def to_record(n: Notification) -> dict[str, Any]:
    return {"ticket_id": n.ticket_id, "change": n.change.value, "level": n.level, "device": n.device,
            "rule": n.rule, "at": n.at.isoformat(), "affected": list(n.affected), "clock": n.clock,
            "deadline": n.deadline.isoformat() if n.deadline else None, "round": n.round, "note": n.note,
            "extra": dict(n.extra), "link": n.link}


def from_record(r: dict[str, Any]) -> Notification:
    return Notification(ticket_id=r["ticket_id"], change=ChangeKind(r["change"]), level=int(r["level"]),
                        device=r["device"], rule=r["rule"], at=datetime.fromisoformat(r["at"]),
                        affected=tuple(r["affected"]), clock=r["clock"],
                        deadline=datetime.fromisoformat(r["deadline"]) if r["deadline"] else None,
                        round=int(r["round"]), note=r["note"], extra=dict(r["extra"]), link=r.get("link"))


class MemoryOutbox:
    """In-process outbox (lost on restart); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, OutboxItem] = {}
        self._keys: set[tuple[str, str]] = set()
        self._next = 1

    def put(self, channel: str, n: Notification, extra: tuple[str, ...], now: datetime) -> bool:
        with self._lock:
            if (channel, n.key) in self._keys:
                return False
            self._keys.add((channel, n.key))
            self._items[self._next] = OutboxItem(self._next, channel, n, extra, 0, now)
            self._next += 1
            return True

    def due(self, channel: str, now: datetime, limit: int) -> list[OutboxItem]:
        with self._lock:
            out = [i for i in self._items.values()
                   if i.channel == channel and i.status is Status.PENDING and i.next_at <= now]
            return sorted(out, key=lambda i: (i.next_at, i.id))[:limit]

    def _set(self, ids: list[int], **changes: Any) -> None:
        with self._lock:
            for i in ids:
                self._items[i] = replace(self._items[i], **changes)

    def mark_sent(self, ids: list[int], now: datetime) -> None:
        self._set(ids, status=Status.SENT)

    def mark_retry(self, ids: list[int], attempts: int, next_at: datetime, error: str) -> None:
        self._set(ids, attempts=attempts, next_at=next_at, last_error=error)

    def mark_failed(self, ids: list[int], attempts: int, error: str) -> None:
        self._set(ids, attempts=attempts, status=Status.FAILED, last_error=error)

    def pending(self) -> int:
        with self._lock:
            return sum(1 for i in self._items.values() if i.status is Status.PENDING)


class OutboxRow(Base):
    __tablename__ = "notify_outbox"
    __table_args__ = (UniqueConstraint("channel", "key", name="uq_notify_outbox_channel_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(100), index=True)
    key: Mapped[str] = mapped_column(String(400))
    ticket_id: Mapped[str] = mapped_column(String(64), index=True)
    record: Mapped[str] = mapped_column(Text)  # the notification as JSON
    extra: Mapped[str] = mapped_column(Text, default="[]")  # extra recipients, JSON list
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    sent_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")


class SqlOutbox:
    """Outbox in the SQL state database (table ``notify_outbox``); survives restarts.

    ``writing``: where ``put`` writes (``TicketStore.writing``): inside a unit of ticket changes the row is
    part of the unit's transaction, so a notification is queued if and only if the change it tells of is
    committed, whatever happens to the process in between; elsewhere a transaction of its own."""

    def __init__(self, engine: Engine, *,
                 writing: Callable[[], AbstractContextManager[Session]] | None = None) -> None:
        self.engine = engine
        self._writing = writing

    def create_schema(self) -> None:
        Base.metadata.create_all(self.engine, tables=[Base.metadata.tables["notify_outbox"]])

    def put(self, channel: str, n: Notification, extra: tuple[str, ...], now: datetime) -> bool:
        row = OutboxRow(channel=channel, key=n.key, ticket_id=n.ticket_id,
                        record=json.dumps(to_record(n), ensure_ascii=False), extra=json.dumps(list(extra)),
                        status=Status.PENDING.value, attempts=0, next_ms=to_ms(now), created_ms=to_ms(now),
                        last_error="")
        try:
            if self._writing is None:
                with Session(self.engine) as s, s.begin():
                    s.add(row)
            else:
                with self._writing() as s:  # a savepoint of a unit: a duplicate undoes this row alone
                    s.add(row)
                    s.flush()
            return True
        except IntegrityError:
            return False

    def due(self, channel: str, now: datetime, limit: int) -> list[OutboxItem]:
        q = (select(OutboxRow).where(OutboxRow.channel == channel, OutboxRow.status == Status.PENDING.value,
                                     OutboxRow.next_ms <= to_ms(now))
             .order_by(OutboxRow.next_ms, OutboxRow.id).limit(limit))
        with Session(self.engine) as s:
            return [OutboxItem(r.id, r.channel, from_record(json.loads(r.record)), tuple(json.loads(r.extra)),
                               r.attempts, from_ms(r.next_ms, SHANGHAI), Status(r.status), r.last_error)
                    for r in s.scalars(q)]

    def _update(self, ids: list[int], **values: Any) -> None:
        if not ids:
            return
        with Session(self.engine) as s, s.begin():
            s.execute(update(OutboxRow).where(OutboxRow.id.in_(ids)).values(**values))

    def mark_sent(self, ids: list[int], now: datetime) -> None:
        self._update(ids, status=Status.SENT.value, sent_ms=to_ms(now))

    def mark_retry(self, ids: list[int], attempts: int, next_at: datetime, error: str) -> None:
        self._update(ids, attempts=attempts, next_ms=to_ms(next_at), last_error=error)

    def mark_failed(self, ids: list[int], attempts: int, error: str) -> None:
        self._update(ids, attempts=attempts, status=Status.FAILED.value, last_error=error)

    def pending(self) -> int:
        with Session(self.engine) as s:
            q = select(func.count()).select_from(OutboxRow).where(OutboxRow.status == Status.PENDING.value)
            return int(s.scalar(q) or 0)



    def failed(self, limit: int = 50) -> list[OutboxItem]:
        """The newest items given up on (kept across restarts, unlike the dispatcher's counters)."""
        q = (select(OutboxRow).where(OutboxRow.status == Status.FAILED.value)
             .order_by(OutboxRow.id.desc()).limit(limit))
        with Session(self.engine) as s:
            return [OutboxItem(r.id, r.channel, from_record(json.loads(r.record)), tuple(json.loads(r.extra)),
                               r.attempts, from_ms(r.next_ms, SHANGHAI), Status(r.status), r.last_error)
                    for r in s.scalars(q)]

    def purge(self, older_than: datetime) -> int:
        """Forget sent and failed items queued before ``older_than``; returns how many rows went."""
        with Session(self.engine) as s, s.begin():
            result = s.execute(delete(OutboxRow).where(OutboxRow.status != Status.PENDING.value,
                                                       OutboxRow.created_ms < to_ms(older_than)))
            return int(result.rowcount)  # type: ignore[attr-defined]  # a DELETE's CursorResult has rowcount
