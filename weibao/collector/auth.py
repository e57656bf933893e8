"""API tokens: issued once as random text, kept only as SHA-256, verified per request, revoked by name."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Engine, insert, select, update

from weibao.collector.errors import TokenError
from weibao.collector.state.models import Token
from weibao.core.timeutil import now_ms


class Role(StrEnum):
    AGENT = "agent"          # ships batches and registers its devices
    ENGINEER = "engineer"    # works tickets and maintenance windows
    CLIENT = "client"        # the client's maintenance department: reads tickets, opens requests, answers


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token belongs to."""

    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    role: Role
    created_ms: int
    revoked_ms: int | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(engine: Engine, name: str, role: Role = Role.AGENT) -> str:
    """A new token for ``name``: the only time its text exists outside the caller is this return value."""
    token = "wb_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        active = conn.execute(select(Token.id).where(Token.name == name, Token.revoked_ms.is_(None))).first()
        if active is not None:
            raise TokenError(f"{name!r} already holds an active token; revoke it first")
        conn.execute(insert(Token).values(name=name, role=str(role), token_hash=_hash(token),
                                                     created_ms=now_ms(), revoked_ms=None))
    return token


def revoke(engine: Engine, name: str) -> int:
    """Revoke every active token of ``name``; returns how many."""
    with engine.begin() as conn:
        res = conn.execute(update(Token).where(Token.name == name, Token.revoked_ms.is_(None))
                           .values(revoked_ms=now_ms()))
        count = int(res.rowcount or 0)
    if count == 0:
        raise TokenError(f"{name!r} holds no active token")
    return count


def verify(engine: Engine, token: str) -> Principal | None:
    """The owner of ``token`` if it is known and not revoked, else None. Looked up at every request, so a
    revocation made by another process takes effect at once."""
    if not token or len(token) > 256:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(Token.name, Token.role)
                           .where(Token.token_hash == _hash(token), Token.revoked_ms.is_(None))).first()
    if row is None:
        return None
    return Principal(name=row.name, role=Role(row.role))


def listing(engine: Engine) -> list[TokenInfo]:
    with engine.connect() as conn:
        rows = conn.execute(select(Token.name, Token.role, Token.created_ms, Token.revoked_ms)
                            .order_by(Token.name, Token.created_ms)).all()
    return [TokenInfo(r.name, Role(r.role), r.created_ms, r.revoked_ms) for r in rows]
