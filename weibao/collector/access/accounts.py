"""Console accounts: users with a role, passwords hashed with argon2id (argon2-cffi), never stored or shown.

A login is checked by ``authenticate``: an unknown name costs the same hashing work as a known one, so
timing does not tell which names exist. A hash made with older parameters is replaced at the next good
login. ``must_change`` marks a password someone else chose (a generated one-time password): the console
asks for a new one before anything else.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, insert, select, update

from weibao.collector.access.errors import AccessError
from weibao.collector.state.models import User
from weibao.core.timeutil import now_ms

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class UserRole(StrEnum):
    ADMIN = "admin"        # an engineer who also manages users and reads the audit log
    ENGINEER = "engineer"  # works tickets and maintenance windows
    CLIENT = "client"      # the client's maintenance department: reads; acts only where the table allows


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    role: UserRole
    disabled: bool
    must_change: bool
    created_ms: int
    updated_ms: int


def _account(row: Any) -> Account:
    return Account(row.id, row.name, UserRole(row.role), row.disabled, row.must_change, row.created_ms,
                   row.updated_ms)


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise AccessError("a user name is 1-64 letters, digits or . _ @ - (starting with a letter or digit)")
    return name


def check_password(password: str, *, name: str = "") -> str:
    if len(password) < MIN_PASSWORD:
        raise AccessError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccessError(f"a password has at most {MAX_PASSWORD} characters")
    if name and password.lower() == name.lower():
        raise AccessError("the password must not be the user name")
    return password


def generate_password() -> str:
    """A random password for a first login (about 120 bits)."""
    return secrets.token_urlsafe(15)


def add(engine: Engine, name: str, role: UserRole, password: str, *, must_change: bool = False) -> Account:
    check_name(name)
    check_password(password, name=name)
    now = now_ms()
    with engine.begin() as conn:
        if conn.execute(select(User.id).where(User.name == name)).first() is not None:
            raise AccessError(f"user {name!r} exists already")
        conn.execute(insert(User).values(name=name, role=str(role), password_hash=_HASHER.hash(password),
                                         disabled=False, must_change=must_change, created_ms=now,
                                         updated_ms=now))
    found = get(engine, name)
    assert found is not None
    return found


def get(engine: Engine, name: str) -> Account | None:
    with engine.connect() as conn:
        row = conn.execute(select(User).where(User.name == name)).first()
    return _account(row) if row is not None else None


def by_id(engine: Engine, user_id: int) -> Account | None:
    with engine.connect() as conn:
        row = conn.execute(select(User).where(User.id == user_id)).first()
    return _account(row) if row is not None else None


def listing(engine: Engine) -> list[Account]:
    with engine.connect() as conn:
        return [_account(r) for r in conn.execute(select(User).order_by(User.name))]


def _change(engine: Engine, name: str, **values: object) -> Account:
    with engine.begin() as conn:
        res = conn.execute(update(User).where(User.name == name).values(updated_ms=now_ms(), **values))
        if not res.rowcount:
            raise AccessError(f"no user {name!r}")
    found = get(engine, name)
    assert found is not None
    return found


def set_password(engine: Engine, name: str, password: str, *, must_change: bool = False) -> Account:
    check_password(password, name=name)
    return _change(engine, name, password_hash=_HASHER.hash(password), must_change=must_change)


def set_role(engine: Engine, name: str, role: UserRole) -> Account:
    return _change(engine, name, role=str(role))


def set_disabled(engine: Engine, name: str, disabled: bool) -> Account:
    return _change(engine, name, disabled=disabled)


def authenticate(engine: Engine, name: str, password: str) -> Account | None:
    """The account if ``name`` exists, is enabled and ``password`` is its password; else None."""
    with engine.connect() as conn:
        row = conn.execute(select(User).where(User.name == name)).first() if len(name) <= 64 else None
    user: Any = row
    stored = user.password_hash if user is not None else _DUMMY_HASH
    try:
        _HASHER.verify(stored, password[:MAX_PASSWORD])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled:
        return None
    if _HASHER.check_needs_rehash(stored):
        with engine.begin() as conn:
            conn.execute(update(User).where(User.id == user.id).values(password_hash=_HASHER.hash(password)))
    return _account(user)
