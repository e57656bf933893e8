"""One replica among several: the elector, and what the leader runs while it leads.

On election the replica builds a fresh contract engine and notification sender (nothing carries over from
an earlier term), hands the engine the feed rows the previous leader had not worked through (their faults
are in the stores and come back through the engine's start-up replay; their events and watched samples
come from the rows), then starts the engine (replay, then live) and follows the feed. On step-down it stops
all of it; ingest goes on. Tickets are found by episode id, so a replay never opens one twice.

Catch-up. A single collector's start-up replay only rebuilds state and then syncs the episodes still open:
whatever it replays, that collector had acted on before it stopped. A new leader's replay also holds what
the other replicas stored while no engine ran (between the old leader's last batch and the replay): a fault
that ended there, or began and ended there. So once the replay is done and every feed row committed before
it has been handed over, the engine runs one catch-up on its own thread: every ended episode whose ticket is
still active is synced (its restoration, at the episode's own end time), and every ended episode without a
ticket that ends at or after the earliest fault sample of those feed rows is synced too (opened and
restored, as live data would have done).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, text

from weibao.collector.config import CollectorConfig
from weibao.collector.engine.extras import UPS_METRIC
from weibao.collector.engine.replay import FAULT_METRICS
from weibao.collector.engine.service import ContractEngine
from weibao.collector.engine.wiring import ContractServices
from weibao.collector.errors import Fenced
from weibao.collector.ha import feed
from weibao.collector.ha.leader import Elector, leader_fence
from weibao.collector.notify.dispatcher import Dispatcher
from weibao.collector.notify.outbox import SqlOutbox
from weibao.collector.storage import SampleStore
from weibao.collector.tickets.ops import ACTIVE, TicketOps
from weibao.core.timeutil import now_ms

log = logging.getLogger(__name__)

FEED_READ = 500  # rows per read of the feed
POSITION_EVERY_S = 1.0  # how often the leader records how far its engine has worked through the feed
PRUNE_EVERY_S = 60.0
KEEP_FEED_MS = 600_000  # rows worked through stay this long (a look back for a person)


class LeaderJob(Protocol):
    """Work that runs on the leader only, started after its engine and stopped before it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def replica_name(config: CollectorConfig) -> str:
    if config.ha.replica:
        return config.ha.replica
    port = config.listen.rsplit(":", 1)[-1]
    return f"{socket.gethostname()}:{port}"


def catch_up(engine: ContractEngine, since: datetime | None) -> int:
    """Sync the ended episodes no engine acted on (see the module docstring); on the engine's thread.
    Returns how many were synced."""
    ev, now, n = engine.evaluator, engine.now(), 0
    for device in list(engine.book.specs):
        for tracker in ev.trackers(device):
            for ep in tracker.episodes(now):
                if ep.is_open or ep.end is None:
                    continue
                ticket = engine.ops.by_episode(ep.id)
                if (ticket is not None and ticket.state in ACTIVE) or (
                        ticket is None and since is not None and ep.end >= since):
                    engine.sync.sync(ep, ev, now, allow_ended=True)
                    n += 1
    return n


def writer(services: ContractServices) -> feed.FeedWriter:
    return feed.FeedWriter({UPS_METRIC, *(c.metric for c in services.files.danger_checks)})


class _Term:
    """What one leadership runs: engine, sender, feed follower."""

    def __init__(self, rt: HaRuntime, term: int) -> None:
        self.rt = rt
        self.term = term
        cfg = rt.config
        svc = rt.services
        self.sender = Dispatcher(svc.files.notify, outbox=SqlOutbox(rt.state, writing=svc.store.writing),
                                 ticket_url=cfg.console.ticket_url,
                                 extra_recipients=svc.files.calendar.extra_recipients)
        ops = TicketOps(svc.store, self.sender.submit, transactional=True, after_commit=self.sender.wake)
        self.engine = ContractEngine(cfg.contract, svc.files, ops, rt.samples, guard=leader_fence(term))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._submitted: deque[tuple[int, int]] = deque()  # (engine seq, feed id), oldest first
        self._seq = 0
        self.position = 0  # the newest feed id the engine has processed (or skipped)
        self.read_to = 0  # the newest feed id handed to the engine
        self.earliest: datetime | None = None  # of the fault samples handed over before the catch-up
        self.caught_up = False

    def start(self) -> None:
        with self.rt.state.connect() as conn:
            position = int(conn.execute(text("SELECT feed_position FROM engine_leader WHERE id = 1")).scalar_one())
        newest = feed.newest(self.rt.state)
        room = max(1, self.rt.config.contract.queue_max_batches // 2)
        if newest - position > room:
            # their faults come back through the replay anyway; only their events and watched samples are lost
            log.warning("engine feed: %d rows since the last leader's position; the oldest are not handed over",
                        newest - position)
            position = newest - room
        self.position = self.read_to = position
        # the backlog goes in before the engine starts: its batches count as covered by the start-up replay
        backlog = feed.read(self.rt.state, position, room)
        for item in backlog:
            self._hand(item)
        log.info("term %d: %d feed rows handed over from position %d", self.term, len(backlog), position)
        self.sender.start()
        self.engine.start()
        for job in self.rt.jobs:
            job.start()
        self._thread = threading.Thread(target=self._follow, name="weibao-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        for job in reversed(self.rt.jobs):
            try:
                job.stop()
            except Exception:  # the engine must stop whatever a job does
                log.exception("term %d: a leader job failed to stop", self.term)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
        self.engine.stop()
        self.sender.stop()

    def _hand(self, item: feed.FeedItem) -> None:
        if item.kind == feed.BATCH and item.batch is not None:
            if not self.caught_up:
                for s in item.batch.samples:
                    if s["metric"] in FAULT_METRICS and (self.earliest is None or s["ts"] < self.earliest):
                        self.earliest = s["ts"]
            self.engine.submit(item.batch)
            self._seq += 1  # the engine numbers the batches it is given 1, 2, ...: this is the only giver
            self._submitted.append((self._seq, item.id))
        elif item.kind == feed.MAINTENANCE:
            self.engine.reload_maintenance()
        self.read_to = item.id

    def _processed(self) -> int:
        done = self.engine.processed_seq
        while self._submitted and self._submitted[0][0] <= done:
            self.position = self._submitted.popleft()[1]
        if not self._submitted:
            self.position = self.read_to
        return self.position

    def _catch_up(self) -> None:
        """Once the replay is done: hand over every row committed before it, then the catch-up."""
        for _ in range(10_000):  # bounded: rows keep coming while it reads; FEED_READ at a time
            items = feed.read(self.rt.state, self.read_to, FEED_READ)
            for item in items:
                self._hand(item)
            if len(items) < FEED_READ:
                break
        since = self.earliest
        self.caught_up = True

        def run() -> None:
            try:
                n = catch_up(self.engine, since)
            except Fenced:  # another replica leads: the engine stops (ContractEngine)
                raise
            except Exception:  # the live engine goes on; the episodes are synced again as data comes
                log.exception("term %d: catch-up after the replay failed", self.term)
            else:
                log.info("term %d: catch-up synced %d ended episodes (fault samples since %s)", self.term, n,
                         since.isoformat() if since is not None else "-")
        self.engine.call(run)

    def _follow(self) -> None:
        poll = self.rt.config.ha.feed_poll_s
        recorded, last_record, last_prune = -1, 0.0, time.monotonic()
        while not self._stop.is_set():
            try:
                if not self.caught_up and self.engine.ready.is_set():
                    self._catch_up()
                items = feed.read(self.rt.state, self.read_to, FEED_READ)
                for item in items:
                    if self._stop.is_set():
                        return
                    self._hand(item)
                mono = time.monotonic()
                pos = self._processed()
                if pos != recorded and mono - last_record >= POSITION_EVERY_S:
                    with self.rt.state.begin() as conn:
                        n = conn.execute(text("UPDATE engine_leader SET feed_position = :p WHERE id = 1 AND "
                                              "term = :t"), {"p": pos, "t": self.term}).rowcount
                    if not n:
                        log.warning("term %d: another replica leads now; this one stops following the feed",
                                    self.term)
                        return
                    recorded, last_record = pos, mono
                if mono - last_prune >= PRUNE_EVERY_S:
                    last_prune = mono
                    feed.prune(self.rt.state, recorded, now_ms() - KEEP_FEED_MS)
                if len(items) == FEED_READ:
                    continue
            except Exception:  # PostgreSQL away: the elector decides about the leadership; keep trying
                log.exception("engine feed: read failed")
            self._stop.wait(poll)


class HaRuntime:
    """See the module docstring. ``start`` / ``stop`` from the application's lifespan."""

    def __init__(self, config: CollectorConfig, state: Engine, samples: SampleStore,
                 services: ContractServices) -> None:
        self.config = config
        self.state = state
        self.samples = samples
        self.services = services
        self.replica = replica_name(config)
        self.jobs: list[LeaderJob] = []  # besides the engine and the sender (the scheduled reports)
        self._term: _Term | None = None
        self.elector = Elector(state, config.resolved_state_url(), config.ha, self.replica,
                               on_elected=self._elected, on_deposed=self._deposed)

    @property
    def leading(self) -> bool:
        return self.elector.leading and self._term is not None

    def start(self) -> None:
        if self.config.ha.candidate:
            self.elector.start()
        else:
            log.info("replica %s ingests only (ha.candidate: false): it never runs the contract engine",
                     self.replica)

    def stop(self) -> None:
        self.elector.stop()

    def _elected(self, term: int) -> None:
        t = _Term(self, term)
        t.start()
        self._term = t
        self.services.engine = t.engine

    def _deposed(self) -> None:
        t, self._term = self._term, None
        self.services.engine = None
        if t is not None:
            t.stop()

    def signal_maintenance(self) -> None:
        feed.signal(self.state, feed.MAINTENANCE)

    def leader(self) -> dict[str, Any]:
        """Who leads, as the leader row says (None when the state store does not answer)."""
        try:
            with self.state.connect() as conn:
                row = conn.execute(text("SELECT term, holder, since_ms, feed_position FROM engine_leader "
                                        "WHERE id = 1")).one()
        except Exception:  # status must answer even without PostgreSQL
            return {"term": None, "holder": None}
        return {"term": int(row.term), "holder": row.holder or None, "since_ms": int(row.since_ms),
                "feed_position": int(row.feed_position)}

    def status(self) -> dict[str, Any]:
        t = self._term
        return {"replica": self.replica, "candidate": self.config.ha.candidate, "leading": self.leading,
                "term": self.elector.term, "elections": self.elector.elections,
                "feed_position": t.position if t is not None else None, "leader": self.leader()}

    def metrics(self) -> list[str]:
        name = self.replica.replace("\\", "\\\\").replace('"', '\\"')
        return ["# HELP weibao_ha_leader 1 while this replica runs the contract engine (leader), else 0",
                "# TYPE weibao_ha_leader gauge",
                f'weibao_ha_leader{{replica="{name}"}} {int(self.leading)}',
                "# HELP weibao_ha_elections_total times this replica became leader",
                "# TYPE weibao_ha_elections_total counter",
                f'weibao_ha_elections_total{{replica="{name}"}} {self.elector.elections}']
