"""Accounts, sessions and login throttling on a real SQLite state store, with hand-computed times."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from weibao.collector.access import accounts, sessions, throttle
from weibao.collector.access.accounts import UserRole
from weibao.collector.access.errors import AccessError
from weibao.collector.state.db import create_state_engine, migrate

MIN = 60_000  # ms


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    e = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(e)
    return e


def test_passwords_are_kept_as_argon2id_and_checked(engine: Engine) -> None:
    accounts.add(engine, "wang", UserRole.ENGINEER, "correct horse battery")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users WHERE name = 'wang'")).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert accounts.authenticate(engine, "wang", "correct horse battery") is not None
    assert accounts.authenticate(engine, "wang", "correct horse batterY") is None
    assert accounts.authenticate(engine, "nobody", "correct horse battery") is None
    accounts.set_disabled(engine, "wang", True)
    assert accounts.authenticate(engine, "wang", "correct horse battery") is None  # disabled: no login
    with pytest.raises(AccessError, match="at least 10"):
        accounts.add(engine, "li", UserRole.CLIENT, "short")
    with pytest.raises(AccessError, match="exists already"):
        accounts.add(engine, "wang", UserRole.CLIENT, "another long one")
    with pytest.raises(AccessError, match="user name"):
        accounts.add(engine, "<script>", UserRole.CLIENT, "another long one")


def test_session_idle_and_absolute_timeouts(engine: Engine) -> None:
    user = accounts.add(engine, "wang", UserRole.ENGINEER, "correct horse battery")
    limits = sessions.Limits(idle_s=30 * 60, absolute_s=12 * 3600)
    t0 = 1_800_000_000_000
    sid = sessions.start(engine, user, "127.0.0.1", at_ms=t0)
    # active every 20 minutes: alive at 20, 40, ... up to the absolute limit of 12 h = 720 min
    for minute in range(20, 720, 20):
        assert sessions.resolve(engine, sid, limits, at_ms=t0 + minute * MIN) is not None, minute
    assert sessions.resolve(engine, sid, limits, at_ms=t0 + 720 * MIN) is None  # 12 h after the login
    # idle: the last activity at 0, nothing until 30 min later -> over
    sid2 = sessions.start(engine, user, "127.0.0.1", at_ms=t0)
    assert sessions.resolve(engine, sid2, limits, at_ms=t0 + 29 * MIN, touch=False) is not None
    assert sessions.resolve(engine, sid2, limits, at_ms=t0 + 30 * MIN) is None
    assert sessions.resolve(engine, sid2, limits, at_ms=t0 + 31 * MIN) is None  # ended for good
    # a background refresh (touch=False) is no activity: polling every minute still times out at 30
    sid3 = sessions.start(engine, user, "127.0.0.1", at_ms=t0)
    for minute in range(1, 30):
        assert sessions.resolve(engine, sid3, limits, at_ms=t0 + minute * MIN, touch=False) is not None
    assert sessions.resolve(engine, sid3, limits, at_ms=t0 + 30 * MIN, touch=False) is None


def test_logout_and_new_password_end_sessions(engine: Engine) -> None:
    user = accounts.add(engine, "wang", UserRole.ENGINEER, "correct horse battery")
    limits = sessions.Limits(idle_s=1800, absolute_s=43200)
    a, b, c = (sessions.start(engine, user, "127.0.0.1") for _ in range(3))
    assert sessions.end(engine, a)
    assert sessions.resolve(engine, a, limits) is None
    assert sessions.end_all(engine, user.id, keep=b) == 1  # c ended, b (the one that changed it) kept
    assert sessions.resolve(engine, b, limits) is not None and sessions.resolve(engine, c, limits) is None
    found = sessions.resolve(engine, b, limits)
    assert found is not None and sessions.csrf_ok(found, sessions.csrf_token(b))
    assert not sessions.csrf_ok(found, sessions.csrf_token(c)) and not sessions.csrf_ok(found, "")


def bad(engine: Engine, name: str, address: str, lim: throttle.Limits, at_ms: int) -> bool | None:
    """One login with a wrong password: None when refused by a lockout, else whether it started one."""
    if throttle.attempt(engine, name, address, lim, at_ms) is not None:
        return None
    return throttle.failure(engine, name, address, lim, at_ms)


def good(engine: Engine, name: str, address: str, lim: throttle.Limits, at_ms: int) -> bool:
    """One login with the right password: whether it went ahead."""
    if throttle.attempt(engine, name, address, lim, at_ms) is not None:
        return False
    throttle.success(engine, name, address, at_ms)
    return True


def test_throttle_locks_an_account_after_its_failures_within_the_window(engine: Engine) -> None:
    lim = throttle.Limits(account_failures=3, address_failures=10, window_ms=15 * MIN, lockout_ms=15 * MIN)
    t0 = 1_800_000_000_000
    # failures at 0, 5 and 10 min: the third reaches 3 within 15 min -> locked from 10 until 25 min
    assert bad(engine, "wang", "10.0.0.1", lim, t0) is False
    assert bad(engine, "wang", "10.0.0.2", lim, t0 + 5 * MIN) is False
    assert bad(engine, "wang", "10.0.0.3", lim, t0 + 10 * MIN) is True
    assert throttle.locked_until(engine, "wang", "10.0.0.9", t0 + 11 * MIN) == t0 + 25 * MIN
    assert throttle.locked_until(engine, "WANG", "10.0.0.9", t0 + 24 * MIN) == t0 + 25 * MIN  # any spelling
    assert not good(engine, "wang", "10.0.0.9", lim, t0 + 24 * MIN)  # the right password too
    assert throttle.locked_until(engine, "wang", "10.0.0.9", t0 + 25 * MIN) is None
    assert throttle.locked_until(engine, "li", "10.0.0.1", t0 + 11 * MIN) is None  # other accounts go on
    # failures 20 min apart never gather 3 in one 15-minute window
    for k in range(5):
        assert bad(engine, "li", "10.0.0.5", lim, t0 + k * 20 * MIN) is False
    # a good login clears the account's count
    bad(engine, "zhao", "10.0.0.6", lim, t0)
    bad(engine, "zhao", "10.0.0.6", lim, t0 + MIN)
    assert good(engine, "zhao", "10.0.0.6", lim, t0 + MIN)
    assert bad(engine, "zhao", "10.0.0.6", lim, t0 + 2 * MIN) is False
    assert bad(engine, "zhao", "10.0.0.6", lim, t0 + 3 * MIN) is False


def test_throttle_locks_an_address_guessing_across_accounts(engine: Engine) -> None:
    lim = throttle.Limits(account_failures=5, address_failures=4, window_ms=15 * MIN, lockout_ms=10 * MIN)
    t0 = 1_800_000_000_000
    # four names, one failure each, from one address in 4 minutes: the address is locked from 3 to 13 min
    results = [bad(engine, f"user{k}", "10.9.9.9", lim, t0 + k * MIN) for k in range(4)]
    assert results == [False, False, False, True]
    assert throttle.locked_until(engine, "anyone", "10.9.9.9", t0 + 4 * MIN) == t0 + 13 * MIN
    assert throttle.locked_until(engine, "anyone", "10.9.9.8", t0 + 4 * MIN) is None
    # a good login from an address takes back its own attempt, not the address's earlier failures
    assert good(engine, "user9", "10.9.9.7", lim, t0)
    assert [bad(engine, f"user{k}", "10.9.9.7", lim, t0 + k * MIN) for k in range(4)] == [False, False, False, True]


def test_attempts_in_flight_count_before_their_passwords_are_checked(engine: Engine) -> None:
    # three attempts begun and not yet answered: a fourth is refused before any password is checked, and
    # starts the lockout; one of the three turning out right clears the account, as any good login does
    lim = throttle.Limits(account_failures=3, address_failures=100, window_ms=15 * MIN, lockout_ms=15 * MIN)
    t0 = 1_800_000_000_000
    assert [throttle.attempt(engine, "wang", f"10.0.0.{k}", lim, t0) for k in range(3)] == [None] * 3
    assert throttle.attempt(engine, "wang", "10.0.0.9", lim, t0 + 1000) == t0 + 1000 + 15 * MIN
    throttle.success(engine, "wang", "10.0.0.0", t0 + 2000)
    assert throttle.locked_until(engine, "wang", "10.0.0.9", t0 + 3000) is None  # a good login clears it


def test_old_counts_and_dead_sessions_are_pruned(engine: Engine) -> None:
    lim = throttle.Limits(account_failures=2, address_failures=100, window_ms=15 * MIN, lockout_ms=60 * MIN)
    t0 = 1_800_000_000_000
    day = 24 * 60 * MIN
    bad(engine, "old", "10.0.0.1", lim, t0)  # a count from two days before the pruning
    bad(engine, "locked", "10.0.0.2", lim, t0 + 2 * day - 30 * MIN)
    bad(engine, "locked", "10.0.0.2", lim, t0 + 2 * day - 30 * MIN)  # locked until 30 min after the pruning
    assert throttle.prune(engine, t0 + 2 * day) == 2  # "old"'s account and address rows
    assert throttle.locked_until(engine, "locked", "10.0.0.9", t0 + 2 * day) == t0 + 2 * day + 30 * MIN
    user = accounts.add(engine, "wang", UserRole.ENGINEER, "correct horse battery")
    limits = sessions.Limits(idle_s=30 * 60, absolute_s=12 * 3600)
    ancient = sessions.start(engine, user, "127.0.0.1", at_ms=t0)
    ended = sessions.start(engine, user, "127.0.0.1", at_ms=t0 + 30 * day)
    sessions.end(engine, ended, at_ms=t0 + 30 * day)
    alive = sessions.start(engine, user, "127.0.0.1", at_ms=t0 + 32 * day)
    assert sessions.prune(engine, t0 + 32 * day) == 2
    assert sessions.resolve(engine, alive, limits, at_ms=t0 + 32 * day) is not None
    assert sessions.resolve(engine, ancient, limits, at_ms=t0 + 32 * day) is None
