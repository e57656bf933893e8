"""Login throttling: attempts counted per account and per address; at the limit, a temporary lockout.

Kept in the state store, so every worker process and a restart see the same counts. An attempt is counted
*before* its password is checked (:func:`attempt`), in a transaction that holds the counts (SQLite's
write lock, PostgreSQL advisory locks on the keys), so that attempts sent in parallel are counted one
after another: no more than the limit are ever checked in a window, however many arrive at once. A wrong
password leaves its count (:func:`failure`, which starts the lockout once the count reached the limit); a
good one takes it back (:func:`success`: the account's count cleared, the address's less this attempt, so
that one known password does not reset a guessing run against other accounts). A lockout refuses every
login of that account (or from that address) until it ends, the right password included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from weibao.collector.state.models import LoginThrottle


@dataclass(frozen=True, slots=True)
class Limits:
    account_failures: int
    address_failures: int
    window_ms: int
    lockout_ms: int


def _keys(name: str, address: str) -> tuple[str, str]:
    return f"account:{name[:64].lower()}", f"address:{address[:64]}"


@contextmanager
def _holding(engine: Engine, keys: tuple[str, ...],
             at_ms: int) -> Iterator[tuple[Connection, dict[str, LoginThrottle]]]:
    """A transaction holding the rows of ``keys`` (made when missing), committed at the end."""
    with engine.connect() as conn:
        make: sqlite.Insert | postgresql.Insert
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock now: read and write as one
            make = sqlite.insert(LoginThrottle)
        else:
            # one advisory lock per key, taken in one global order before any row is touched: transactions
            # on the same keys run one after another, and none can wait on another in a circle (row locks
            # alone could: a row inserted by one is locked before the other's SELECT ... FOR UPDATE)
            for lock in sorted({_lock_id(k) for k in keys}):
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
            make = postgresql.insert(LoginThrottle)
        conn.execute(make.values([{"key": k, "failures": 0, "first_ms": at_ms, "locked_until_ms": None}
                                  for k in sorted(keys)]).on_conflict_do_nothing(index_elements=["key"]))
        rows = {r.key: r for r in conn.execute(select(LoginThrottle).where(LoginThrottle.key.in_(keys))
                                               .order_by(LoginThrottle.key)).all()}
        yield conn, rows  # type: ignore[misc]  # Row objects with the model's columns
        conn.commit()


def _lock_id(key: str) -> int:
    """A signed 64-bit number for ``key`` (PostgreSQL's advisory lock ids); a collision only serialises more."""
    return int.from_bytes(hashlib.sha256(f"weibao.login_throttle:{key}".encode()).digest()[:8], "big", signed=True)


def _set(conn: Connection, key: str, **values: int | None) -> None:
    conn.execute(update(LoginThrottle).where(LoginThrottle.key == key).values(**values))


def locked_until(engine: Engine, name: str, address: str, at_ms: int) -> int | None:
    """When the lockout covering a login of ``name`` from ``address`` ends, or None when there is none."""
    with engine.connect() as conn:
        rows = conn.execute(select(LoginThrottle.locked_until_ms)
                            .where(LoginThrottle.key.in_(_keys(name, address)))).scalars().all()
    ends = [r for r in rows if r is not None and r > at_ms]
    return max(ends) if ends else None


def attempt(engine: Engine, name: str, address: str, limits: Limits, at_ms: int) -> int | None:
    """Count one login attempt before its password is checked: None when it may go ahead, else when the
    lockout that refuses it ends (one already running, or one this attempt starts because as many attempts
    as allowed were counted in the window, some of them perhaps still being checked)."""
    keys = _keys(name, address)
    limit = {keys[0]: limits.account_failures, keys[1]: limits.address_failures}
    with _holding(engine, keys, at_ms) as (conn, rows):
        ends = [r.locked_until_ms for r in rows.values() if r.locked_until_ms is not None and r.locked_until_ms > at_ms]
        if ends:
            return max(ends)
        counts = {k: (r.failures, r.first_ms) if at_ms - r.first_ms < limits.window_ms else (0, at_ms)
                  for k, r in rows.items()}
        full = [k for k, (n, _) in counts.items() if n >= limit[k]]
        if full:
            until = at_ms + limits.lockout_ms
            for k in full:  # after the lockout, a full window of attempts again
                _set(conn, k, failures=0, first_ms=at_ms, locked_until_ms=until)
            return until
        for k, (n, first) in counts.items():
            _set(conn, k, failures=n + 1, first_ms=first)
    return None


def failure(engine: Engine, name: str, address: str, limits: Limits, at_ms: int) -> bool:
    """The attempt counted by :func:`attempt` had a wrong password; True when this started a lockout (its
    account's or its address's count had reached the limit)."""
    keys = _keys(name, address)
    limit = {keys[0]: limits.account_failures, keys[1]: limits.address_failures}
    started = False
    with _holding(engine, keys, at_ms) as (conn, rows):
        for k, r in rows.items():
            locked = r.locked_until_ms is not None and r.locked_until_ms > at_ms
            if not locked and r.failures >= limit[k] and at_ms - r.first_ms < limits.window_ms:
                _set(conn, k, failures=0, first_ms=at_ms, locked_until_ms=at_ms + limits.lockout_ms)
                started = True
    return started


def success(engine: Engine, name: str, address: str, at_ms: int) -> None:
    """The attempt counted by :func:`attempt` had the right password: the account's count is cleared, the
    address's is one less."""
    account, addr = _keys(name, address)
    with _holding(engine, (account, addr), at_ms) as (conn, rows):
        _set(conn, account, failures=0, first_ms=at_ms, locked_until_ms=None)
        row = rows.get(addr)
        if row is not None and row.failures > 0:
            _set(conn, addr, failures=row.failures - 1)


def prune(engine: Engine, at_ms: int, *, older_than_ms: int = 86_400_000) -> int:
    """Forget counts that can no longer matter: no lockout in force and a window begun more than
    ``older_than_ms`` ago (a day: longer than any window the configuration allows). Returns how many."""
    with engine.begin() as conn:
        gone = conn.execute(delete(LoginThrottle).where(
            LoginThrottle.first_ms < at_ms - older_than_ms,
            (LoginThrottle.locked_until_ms.is_(None)) | (LoginThrottle.locked_until_ms <= at_ms))).rowcount
    return int(gone or 0)
