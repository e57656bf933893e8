"""Login throttling: failures counted per account and per address; at the limit, a temporary lockout.

Kept in the state store, so every worker process and a restart see the same counts. A lockout refuses
every login of that account (or from that address) until it ends, the right password included, so
guessing goes no faster than ``limits`` allow. A good login clears its account's count (not the
address's: one known password must not reset a guessing run against other accounts).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, select, update

from weibao.collector.state.models import LoginThrottle


@dataclass(frozen=True, slots=True)
class Limits:
    account_failures: int
    address_failures: int
    window_ms: int
    lockout_ms: int


def _keys(name: str, address: str) -> tuple[str, str]:
    return f"account:{name[:64].lower()}", f"address:{address[:64]}"


def locked_until(engine: Engine, name: str, address: str, at_ms: int) -> int | None:
    """When the lockout covering this login attempt ends, or None when the attempt may go ahead."""
    with engine.connect() as conn:
        rows = conn.execute(select(LoginThrottle.locked_until_ms)
                            .where(LoginThrottle.key.in_(_keys(name, address)))).scalars().all()
    ends = [r for r in rows if r is not None and r > at_ms]
    return max(ends) if ends else None


def _count(conn: Connection, key: str, limit: int, limits: Limits, at_ms: int) -> bool:
    """Count one failure under ``key``; True when it reached ``limit`` (a lockout starts now)."""
    row = conn.execute(select(LoginThrottle).where(LoginThrottle.key == key)).first()
    failures, first, locked = 1, at_ms, None
    if row is not None:
        t = row
        locked = t.locked_until_ms
        if at_ms - t.first_ms < limits.window_ms:
            failures, first = t.failures + 1, t.first_ms
    started = failures >= limit
    if started:  # after the lockout, a full window of attempts again
        locked, failures, first = at_ms + limits.lockout_ms, 0, at_ms
    values = {"failures": failures, "first_ms": first, "locked_until_ms": locked}
    if row is None:
        conn.execute(insert(LoginThrottle).values(key=key, **values))
    else:
        conn.execute(update(LoginThrottle).where(LoginThrottle.key == key).values(**values))
    return started


def failure(engine: Engine, name: str, address: str, limits: Limits, at_ms: int) -> bool:
    """Count one failed login; True when it started a lockout (of the account or the address)."""
    account, addr = _keys(name, address)
    with engine.begin() as conn:
        a = _count(conn, account, limits.account_failures, limits, at_ms)
        b = _count(conn, addr, limits.address_failures, limits, at_ms)
    return a or b


def success(engine: Engine, name: str) -> None:
    account, _ = _keys(name, "")
    with engine.begin() as conn:
        conn.execute(delete(LoginThrottle).where(LoginThrottle.key == account))
