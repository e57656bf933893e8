"""The audit log: every action people take (console, API, CLI) with who, what, when, from where, and outcome.

Entries are only added, never changed; the admin page and ``entries`` read them newest first. A detail
is short text chosen by the caller (a note, a role); passwords and tokens never go in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Engine, insert, select

from weibao.collector.state.models import AuditEntry
from weibao.core.timeutil import now_ms

MAX_DETAIL = 2000


class Via(StrEnum):
    CONSOLE = "console"
    API = "api"
    CLI = "cli"


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at_ms: int
    actor: str
    role: str
    address: str
    via: str
    action: str
    target: str
    outcome: str
    detail: str


def record(engine: Engine, *, actor: str, role: str, address: str, via: Via, action: str, target: str = "",
           ok: bool = True, detail: str = "", at_ms: int | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(insert(AuditEntry).values(
            at_ms=now_ms() if at_ms is None else at_ms, actor=actor[:128], role=role[:16],
            address=address[:64], via=str(via), action=action[:64], target=target[:255],
            outcome="ok" if ok else "refused", detail=detail[:MAX_DETAIL]))


def entries(engine: Engine, *, actor: str | None = None, action: str | None = None, before_id: int | None = None,
            limit: int = 200) -> list[Entry]:
    """Newest first; ``action`` matches a prefix (``ticket.`` for every ticket action)."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if action:
        q = q.where(AuditEntry.action.startswith(action, autoescape=True))
    if before_id is not None:
        q = q.where(AuditEntry.id < before_id)
    with engine.connect() as conn:
        return [Entry(r.id, r.at_ms, r.actor, r.role, r.address, r.via, r.action, r.target, r.outcome, r.detail)
                for r in conn.execute(q)]
