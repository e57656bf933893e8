"""Leader election among the collectors of one PostgreSQL: a session advisory lock on a dedicated connection.

Every replica runs one ``Elector`` thread. A candidate tries ``pg_try_advisory_lock(LEADER_LOCK)`` every
``check_interval_s``; the one that gets it leads until its session ends. The leader confirms its hold on the
same connection at the same pace (``pg_locks``: granted, to this backend). It steps down:

* at once when the connection is lost (the session, and with it the lock, is gone or going);
* when it could not confirm its hold for ``step_down_after_s`` (PostgreSQL slow or unreachable);
* when the leader row names a later term than its own (another replica leads: fencing).

Between losing the lock and noticing it, a leader's engine could still write. ``leader_fence(term)`` closes
that gap: the engine commits nothing unless the leader row still names its term, read under a KEY SHARE row
lock just before the commit. A new leader records its term under FOR UPDATE on that row, so it waits for a
commit already checked (one transaction, not a whole batch), and every later check of the old term fails
(``Fenced``). The feed position the leader records is a plain UPDATE, which does not conflict with the
check.

Every query of the elector waits at most ``check_interval_s`` (at least 1 s): a PostgreSQL that hangs (as
opposed to one that refuses) must not hold the elector in a read for ever. A connection given up that way
is closed as soon as its query returns, so a session whose server was only paused does not keep the lock.

The server ends the session of a leader whose host vanished through TCP keepalives set on this connection
(``tcp_keepalives_idle`` = step_down_after_s + 1 s, then 3 probes 1 s apart): the old leader has stepped
down before another replica can take the lock. A leader process killed outright closes its socket and the
server frees the lock at once: the next candidate check takes over.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from weibao.collector.config import HaConfig
from weibao.collector.errors import Fenced
from weibao.core.timeutil import now_ms

log = logging.getLogger(__name__)

LEADER_LOCK = 0x57420002  # see weibao.collector.ha.feed.FEED_LOCK


def lock_engine(url: str, cfg: HaConfig) -> Engine:
    """An engine for the election connection only: no pool, server-side keepalives (see the module docstring)."""
    idle = math.ceil(cfg.step_down_after_s) + 1
    timeout_ms = int(max(1.0, cfg.check_interval_s) * 1000)
    options = (f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3 "
               f"-c statement_timeout={timeout_ms} -c application_name=weibao-elector")
    return create_engine(url, poolclass=NullPool, connect_args={
        "options": options, "connect_timeout": max(1, math.ceil(cfg.check_interval_s)),
        "keepalives": 1, "keepalives_idle": idle, "keepalives_interval": 1, "keepalives_count": 3})


def leader_fence(term: int) -> Callable[[Session], None]:
    """A check for ``TicketStore.guarded``: the transaction may commit only while the leader row names
    ``term`` (see the module docstring)."""

    def check(s: Session) -> None:
        now = s.execute(text("SELECT term FROM engine_leader WHERE id = 1 FOR KEY SHARE")).scalar_one()
        if int(now) != term:
            raise Fenced(f"term {term} has ended: the leader row names term {int(now)}")

    return check


class Elector:
    """See the module docstring. ``on_elected(term)`` runs when this replica becomes leader,
    ``on_deposed()`` when it stops being one; both on the elector thread."""

    def __init__(self, state: Engine, url: str, cfg: HaConfig, replica: str, *,
                 on_elected: Callable[[int], None], on_deposed: Callable[[], None]) -> None:
        self.state = state
        self.cfg = cfg
        self.replica = replica
        self._lock_engine = lock_engine(url, cfg)
        self._conn: Connection | None = None
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.term: int | None = None  # this replica's term while it leads
        self.confirmed = 0.0  # monotonic time the hold was last confirmed
        self.since: float | None = None  # wall time (s) it became leader
        self.elections = 0

    @property
    def leading(self) -> bool:
        return self.term is not None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="weibao-elector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self.leading:
            self._step_down("the collector stops")
        self._lock_engine.dispose()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.leading:
                    self._confirm()
                else:
                    self._campaign()
            except Exception:  # the loop must outlive any failure; the next check tries again
                log.exception("leader election check failed")
            self._stop.wait(self.cfg.check_interval_s)

    # -- candidate -----------------------------------------------------------------------------------------
    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._drop()
            self._conn = self._lock_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def _connection_or_none(self) -> Connection | None:
        try:
            return self._connection()
        except Exception:  # PostgreSQL away
            self._drop()
            return None

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # closing a broken connection may fail; it is gone either way
                log.debug("closing the election connection failed", exc_info=True)
            self._conn = None

    def _query(self, conn: Connection, sql: str, params: dict[str, Any]) -> Any:
        """``sql``'s one value, waiting at most the query timeout (TimeoutError: the connection is given up)."""
        box: dict[str, Any] = {}
        done, abandoned = threading.Event(), threading.Event()

        def work() -> None:
            try:
                box["value"] = conn.execute(text(sql), params).scalar_one()
            except BaseException as exc:  # handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()
                if abandoned.is_set():
                    _close(conn)

        threading.Thread(target=work, name="weibao-elector-query", daemon=True).start()
        if not done.wait(max(1.0, self.cfg.check_interval_s)):
            abandoned.set()
            if done.is_set():
                _close(conn)
            self._conn = None
            raise TimeoutError(f"PostgreSQL did not answer within {max(1.0, self.cfg.check_interval_s):g} s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _campaign(self) -> None:
        try:
            conn = self._connection()
            got = bool(self._query(conn, "SELECT pg_try_advisory_lock(:k)", {"k": LEADER_LOCK}))
        except Exception as exc:
            self._drop()
            log.debug("leader election: PostgreSQL unavailable (%s)", exc)
            return
        if not got:
            return
        try:
            with self.state.begin() as tx:
                # waits for a fenced commit of the old term under way, not longer than a check
                tx.execute(text(f"SET LOCAL lock_timeout = {int(max(1.0, self.cfg.check_interval_s) * 1000)}"))
                tx.execute(text("SELECT term FROM engine_leader WHERE id = 1 FOR UPDATE"))
                term = int(tx.execute(text(
                    "UPDATE engine_leader SET term = term + 1, holder = :h, since_ms = :t WHERE id = 1 "
                    "RETURNING term"), {"h": self.replica, "t": now_ms()}).scalar_one())
        except Exception:
            log.exception("leader election: could not record the new term; giving the lock back")
            self._drop()
            return
        self.term, self.confirmed, self.since = term, time.monotonic(), time.time()
        self.elections += 1
        log.warning("replica %s leads (term %d): starting the contract engine", self.replica, term)
        try:
            self._on_elected(term)
        except Exception:
            log.exception("replica %s could not start leading; stepping down", self.replica)
            self._step_down("start failed")

    # -- leader --------------------------------------------------------------------------------------------
    def _confirm(self) -> None:
        conn = self._conn
        if conn is None:  # given up after a timeout: a new session cannot hold this term's lock
            if time.monotonic() - self.confirmed > self.cfg.step_down_after_s:
                self._step_down(f"PostgreSQL has not answered for {self.cfg.step_down_after_s:g} s")
                return
            conn = self._connection_or_none()
            if conn is None:
                return
            got = False
            try:
                got = bool(self._query(conn, "SELECT pg_try_advisory_lock(:k)", {"k": LEADER_LOCK}))
            except Exception:  # still unavailable: try again at the next check
                return
            if not got:
                self._step_down("the lock was taken by another session after PostgreSQL stalled")
                return
        if conn.closed or conn.invalidated:
            self._step_down("the election connection is gone")
            return
        try:
            held = bool(self._query(conn, (
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND classid = 0 AND objid = :k AND objsubid = 1 AND granted"), {"k": LEADER_LOCK}))
            term = self._query(conn, "SELECT term FROM engine_leader WHERE id = 1", {})
        except Exception as exc:
            if self._conn is None and time.monotonic() - self.confirmed > self.cfg.step_down_after_s:
                self._step_down(f"PostgreSQL has not answered for {self.cfg.step_down_after_s:g} s")
            elif self._conn is None:
                log.warning("leader: PostgreSQL did not answer in time (%s); retrying", exc)
            elif conn.invalidated:
                self._step_down(f"the election connection was lost ({type(exc).__name__})")
            elif time.monotonic() - self.confirmed > self.cfg.step_down_after_s:
                self._step_down(f"the hold could not be confirmed for {self.cfg.step_down_after_s:g} s")
            else:
                log.warning("leader: could not confirm the hold (%s); retrying", type(exc).__name__)
            return
        if not held:
            self._step_down("PostgreSQL no longer grants the lock to this session")
        elif int(term) != self.term:
            self._step_down(f"the leader row names term {term}, this replica leads term {self.term}")
        else:
            self.confirmed = time.monotonic()

    def _step_down(self, why: str) -> None:
        log.warning("replica %s steps down (term %s): %s", self.replica, self.term, why)
        self.term = None
        self.since = None
        try:
            self._on_deposed()
        finally:
            self._drop()  # releases the lock if the session is still there


def _close(conn: Connection) -> None:
    try:
        conn.close()
    except Exception:  # a broken connection may fail to close; it is gone either way
        log.debug("closing an abandoned election connection failed", exc_info=True)
