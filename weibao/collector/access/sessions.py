"""Console sessions: an unguessable id in a cookie, kept only as its SHA-256, ended by timeouts or logout.

    start(engine, account, address)  -> the new id (the only time it exists outside the cookie)
    resolve(engine, id, now, limits) -> the live session, or None (unknown, ended, idle, too old, user
                                        disabled); a live one is marked seen now and then
    end(engine, id)                  -> logout: the id stops working everywhere at once
    end_all(engine, user_id)         -> a disabled user or a new password ends every session of the user

The CSRF token of a session is derived from its id (HMAC), so it is never stored and cannot be computed
without the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from weibao.collector.access.accounts import Account, by_id
from weibao.collector.state.models import ConsoleSession
from weibao.core.timeutil import now_ms

# a session's "last seen" is written at most this often: a page load need not be a database write
SEEN_EVERY_MS = 15_000


@dataclass(frozen=True, slots=True)
class Limits:
    idle_s: float
    absolute_s: float


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    account: Account
    created_ms: int
    seen_ms: int
    csrf: str


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token(session_id: str) -> str:
    return hmac.new(session_id.encode(), b"weibao-console-csrf", hashlib.sha256).hexdigest()


def csrf_ok(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf, sent or "")




def start(engine: Engine, account: Account, address: str, *, at_ms: int | None = None) -> str:
    session_id = secrets.token_urlsafe(32)
    at = now_ms() if at_ms is None else at_ms
    with engine.begin() as conn:
        conn.execute(insert(ConsoleSession).values(id_hash=_hash(session_id), user_id=account.id, created_ms=at,
                                                   seen_ms=at, ended_ms=None, address=address[:64]))
    return session_id


def resolve(engine: Engine, session_id: str, limits: Limits, *, at_ms: int | None = None,
            touch: bool = True) -> Session | None:
    """The live session with this id. ``touch``: count this request as activity (polling does not)."""
    if not session_id or len(session_id) > 128:
        return None
    at = now_ms() if at_ms is None else at_ms
    key = _hash(session_id)
    with engine.connect() as conn:
        row = conn.execute(select(ConsoleSession).where(ConsoleSession.id_hash == key)).first()
    if row is None:
        return None
    s = row
    if (s.ended_ms is not None or at - s.seen_ms >= limits.idle_s * 1000
            or at - s.created_ms >= limits.absolute_s * 1000):
        if s.ended_ms is None:
            end(engine, session_id, at_ms=at)
        return None
    account = by_id(engine, s.user_id)
    if account is None or account.disabled:
        return None
    seen = s.seen_ms
    if touch and at - seen >= SEEN_EVERY_MS:
        seen = at
        with engine.begin() as conn:
            conn.execute(update(ConsoleSession).where(ConsoleSession.id_hash == key).values(seen_ms=at))
    return Session(session_id, account, s.created_ms, seen, csrf_token(session_id))


def end(engine: Engine, session_id: str, *, at_ms: int | None = None) -> bool:
    at = now_ms() if at_ms is None else at_ms
    with engine.begin() as conn:
        res = conn.execute(update(ConsoleSession).where(ConsoleSession.id_hash == _hash(session_id),
                                                        ConsoleSession.ended_ms.is_(None)).values(ended_ms=at))
    return bool(res.rowcount)


def end_all(engine: Engine, user_id: int, *, keep: str | None = None) -> int:
    """End every open session of the user (except ``keep``, the one changing its own password)."""
    q = update(ConsoleSession).where(ConsoleSession.user_id == user_id, ConsoleSession.ended_ms.is_(None))
    if keep is not None:
        q = q.where(ConsoleSession.id_hash != _hash(keep))
    with engine.begin() as conn:
        return int(conn.execute(q.values(ended_ms=now_ms())).rowcount or 0)


def prune(engine: Engine, at_ms: int, *, older_than_ms: int = 31 * 86_400_000) -> int:
    """Forget sessions that cannot be alive any more: begun more than ``older_than_ms`` ago (31 days: longer
    than the longest absolute timeout allowed), or ended a day ago. Returns how many."""
    day = 86_400_000
    with engine.begin() as conn:
        gone = conn.execute(delete(ConsoleSession).where(
            (ConsoleSession.created_ms < at_ms - older_than_ms)
            | (ConsoleSession.ended_ms.is_not(None) & (ConsoleSession.ended_ms < at_ms - day)))).rowcount
    return int(gone or 0)
