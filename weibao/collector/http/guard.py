"""Connections the API accepts: bounded in number and in time, TLS done here, the client certificate kept.

uvicorn's h11 protocol (``GuardedProtocol``) with what a server on the client's network needs, since
anyone there can open connections without a token:

- a connection limit (``connections.max_connections``, kept below the open-file limit): past it the
  connection idle for longest (before or between requests, or still in its TLS handshake) is closed for
  the new one, or the new one is when every connection is busy with a request. File descriptors are
  never exhausted by connections, so /healthz and ingest keep answering;
- timeouts: from accept (TLS handshake included) to the end of a request's headers
  (``header_timeout_s``), between requests (``idle_timeout_s``, uvicorn's keep-alive), from the headers
  to the end of the body (``body_timeout_s``);
- TLS with ``loop.start_tls`` after accept, not in the listening server, so a connection is counted and
  timed from its first moment (asyncio's own handshake timeout is 60 s and sees no limit). The names of
  a verified client certificate go into the request's scope (``extensions.tls.client_cert_names``) for
  the agent check of mutual TLS (``deps.authenticate``);
- ``install_accept_log``: asyncio logs a traceback for every failed accept() (EMFILE), up to a hundred
  per loop tick: it is logged at most once a minute with a count instead.

Counts (accepted, closed by limit or timeout, TLS failures) are per process, shown in /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import ssl
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from weibao.collector.config import ConnectionsConfig, TlsConfig
from weibao.collector.tls import client_names, server_context
from weibao.core.ratelog import Throttle

log = logging.getLogger(__name__)

# the listen backlog, and so how many connections asyncio accepts in one pass of its loop (before any of
# them is counted here): connections beyond the limit are open for up to two such passes
BACKLOG = 128
# files the process needs besides counted connections: databases, logs, outbound sockets, and the
# connections accepted but not yet counted
FD_RESERVE = 128 + 2 * BACKLOG
_ACCEPT_FAILED = "socket.accept() out of system resource"


@dataclass(frozen=True)
class GuardSettings:
    """What every connection of one server is held to (picklable: worker processes get a copy)."""

    connections: ConnectionsConfig
    tls: TlsConfig | None = None


def connection_limit(configured: int) -> int:
    """``configured``, lowered to leave ``FD_RESERVE`` (at least half) of the open-file limit to the rest."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, max(soft // 2, soft - FD_RESERVE)))


@dataclass
class ConnectionGuard:
    """The connections of one server in one process, least recently active first."""

    settings: GuardSettings
    limit: int
    tls: ssl.SSLContext | None
    open: OrderedDict[GuardedProtocol, None] = field(default_factory=OrderedDict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("accepted", "evicted", "refused_busy", "header_timeout", "body_timeout", "tls_failed"), 0))
    throttle: Throttle = field(default_factory=lambda: Throttle(log))

    def admit(self, conn: GuardedProtocol) -> bool:
        """Room for ``conn``: the longest idle connection closed if the limit is reached; False when all
        are busy (the caller closes ``conn``)."""
        self.counts["accepted"] += 1
        if len(self.open) >= self.limit:
            victim = next((c for c in self.open if c.idle()), None)
            if victim is None:
                self.counts["refused_busy"] += 1
                self.throttle("full", "connection limit %d reached with every connection busy: new connections "
                              "are closed at once", self.limit)
                return False
            self.counts["evicted"] += 1
            self.throttle("evict", "connection limit %d reached: closing the connections idle for longest to "
                          "make room", self.limit)
            victim.close_now()
        self.open[conn] = None
        return True

    def touch(self, conn: GuardedProtocol) -> None:
        if conn in self.open:
            self.open.move_to_end(conn)

    def release(self, conn: GuardedProtocol) -> None:
        self.open.pop(conn, None)

    def render(self) -> list[str]:
        out = ["# HELP weibao_http_connections_open Client connections open now (this process).",
               "# TYPE weibao_http_connections_open gauge", f"weibao_http_connections_open {len(self.open)}",
               "# HELP weibao_http_connections_limit The connection limit in force (this process).",
               "# TYPE weibao_http_connections_limit gauge", f"weibao_http_connections_limit {self.limit}",
               "# HELP weibao_http_connections_total Client connections by what became of them (this process).",
               "# TYPE weibao_http_connections_total counter"]
        out += [f'weibao_http_connections_total{{event="{k}"}} {v}' for k, v in self.counts.items()]
        return out


_guards: weakref.WeakKeyDictionary[ServerState, ConnectionGuard] = weakref.WeakKeyDictionary()
_guards_lock = threading.Lock()


def _guard_for(state: ServerState, settings: GuardSettings) -> ConnectionGuard:
    with _guards_lock:
        guard = _guards.get(state)
        if guard is None:
            limit = connection_limit(settings.connections.max_connections)
            tls = server_context(settings.tls) if settings.tls is not None else None
            guard = _guards[state] = ConnectionGuard(settings, limit, tls)
            log.info("connections: at most %d, headers within %g s, idle %g s, body within %g s%s", limit,
                     settings.connections.header_timeout_s, settings.connections.idle_timeout_s,
                     settings.connections.body_timeout_s, ", TLS" if tls is not None else "")
        return guard


def metrics_lines() -> list[str]:
    """The connection counts of this process's servers, for /metrics."""
    with _guards_lock:
        guards = list(_guards.values())
    return [line for g in guards for line in g.render()]


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol under a ``ConnectionGuard`` (see the module docstring)."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *, settings: GuardSettings) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = _guard_for(server_state, settings)
        self._limits = settings.connections
        self._raw: asyncio.Transport | None = None
        self._http = False  # uvicorn's protocol has its transport
        self._early = bytearray()  # bytes decrypted before the handshake's end was handed to us
        self._timer: asyncio.TimerHandle | None = None
        self._timer_kind = ""
        self._names: tuple[str, ...] = ()
        self._tls_version: str | None = None
        self._task: asyncio.Task[None] | None = None

    # -- the guard's view --------------------------------------------------------------------------------
    def idle(self) -> bool:
        """Not in the middle of a request: may be closed to make room."""
        if not self._http:
            return True
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def close_now(self) -> None:
        transport = self.transport if self._http else self._raw
        if transport is not None:
            transport.abort()
        self._finish()

    def _finish(self) -> None:
        self._stop_timer()
        self.guard.release(self)

    def _start_timer(self, kind: str, seconds: float) -> None:
        if self._timer_kind == kind:
            return
        self._stop_timer()
        self._timer_kind = kind
        self._timer = self.loop.call_later(seconds, self._expired, kind)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_kind = None, ""

    def _expired(self, kind: str) -> None:
        self._timer, self._timer_kind = None, ""
        self.guard.counts[f"{kind}_timeout"] += 1
        self.close_now()

    # -- asyncio protocol ----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw = transport
        if not self.guard.admit(self):
            transport.abort()
            return
        self._start_timer("header", self._limits.header_timeout_s)
        if self.guard.tls is None:
            self._begin(transport)
            return
        transport.pause_reading()  # nothing may be read before the handshake takes the transport over
        self._task = self.loop.create_task(self._handshake(transport, self.guard.tls))
        self._task.add_done_callback(_quiet)

    async def _handshake(self, raw: asyncio.Transport, ctx: ssl.SSLContext) -> None:
        peer = raw.get_extra_info("peername")
        try:
            tls = await self.loop.start_tls(raw, self, ctx, server_side=True,
                                            ssl_handshake_timeout=self._limits.header_timeout_s)
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError, RuntimeError) as exc:
            self.guard.counts["tls_failed"] += 1
            source = str(peer[0]) if peer else "?"
            self.guard.throttle(f"tls {source}", "TLS handshake with %s failed: %s", source,
                                getattr(exc, "reason", None) or type(exc).__name__)
            raw.abort()
            self._finish()
            return
        if tls is None or self._timer_kind != "header":  # closed meanwhile (limit, timeout)
            return
        ssl_object = tls.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._names = client_names(ssl_object.getpeercert(binary_form=True))
            self._tls_version = ssl_object.version()
        self._begin(tls)

    def _begin(self, transport: asyncio.Transport) -> None:
        self._http = True
        super().connection_made(transport)
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            self.data_received(early)

    def data_received(self, data: bytes) -> None:
        if not self._http:
            self._early += data
            return
        self.guard.touch(self)
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        self.guard.touch(self)
        super().on_response_complete()
        self._watch()

    def _watch(self) -> None:
        """Run the timer the request's state calls for: headers incomplete, body incomplete, or none."""
        state = self.conn.their_state
        if state is h11.IDLE:
            if self.conn.trailing_data[0]:  # part of a request's head arrived: the rest has header_timeout_s
                self._start_timer("header", self._limits.header_timeout_s)
            elif self._timer_kind == "body":
                self._stop_timer()
        elif state is h11.SEND_BODY:
            self._start_timer("body", self._limits.body_timeout_s)
        else:
            self._stop_timer()

    def handle_events(self) -> None:
        before = self.scope
        super().handle_events()
        if self.scope is not before and self.scope is not None and self.guard.tls is not None:
            # read by the route before it runs: the request's task was only scheduled
            self.scope["extensions"] = {"tls": {"client_cert_names": list(self._names),
                                                "tls_version": self._tls_version}}

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()
        if self._http:
            super().connection_lost(exc)


def _quiet(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("TLS connection set-up failed", exc_info=task.exception())


def install_accept_log(loop: asyncio.AbstractEventLoop) -> None:
    """Failed accept() calls (EMFILE, ENFILE...) logged at most once a minute with a count; everything else
    as before."""
    previous = loop.get_exception_handler()
    throttle = Throttle(log, logging.ERROR)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == _ACCEPT_FAILED:
            exc = context.get("exception")
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            throttle("accept", "cannot accept connections: %s (open-file limit %d); asyncio retries every second",
                     exc, soft)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    with contextlib.suppress(RuntimeError):
        loop.set_exception_handler(handler)
