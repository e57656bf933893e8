"""ContractEngine: one worker thread that turns ingested batches into tickets, live and in event time.

``Ingestor.subscribe(engine.submit)`` hands over every committed batch. The queue is bounded but never
drops a batch: when it is full, ``submit`` waits (the agent's ingest request waits with it, which is the
back-pressure the agent's spool is made for). Whatever a crash loses from the queue is in the stores
already and comes back through the replay at the next start.

The worker alone touches the evaluator (which is not thread-safe): batches, the periodic sweep, the
rebuild after a registration changed the devices, and reloads of maintenance windows all run on it.

Clock: samples are evaluated in their own (event) time. The sweep needs a "now": the wall clock while
data is live, else (data older than ``live_horizon_s``, e.g. a backfill) the newest event time seen, so
that old data is judged as of its own time and not as a months-long gap. A device's fault is judged as of
its own newest sample (``Evaluator.as_of``), never as of another device's.

Any arrival order: a dependent's samples wait in a ``DependencyGate`` until its upstream's samples reach
them (or the upstream falls silent), so whether it is affected by its upstream's outage, and whose ticket
lists it, is decided the same way whichever agent's batch comes first; the replay at start goes through the
same gate.

Writes: the ticket changes of one batch (and of one sweep) are one transaction (``TicketOps.unit``), with
the notifications they queue in the outbox. On SQLite it holds the lock ingest writes under, so the two
take turns on it (ingest waits for a batch's ticket changes, at most ``tickets.ops.UNIT_HOLD_S`` at a
time, instead of running ahead of the engine) and neither polls in SQLite's busy handler.

Fencing: ``guard`` (a collector replica's leader fence) checks every transaction the worker commits; once
it refuses one (``Fenced``: another replica leads now), that transaction is undone with the notifications it
queued, and the worker stops: the replica's elector steps down, and the new leader's replay covers what
was left.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from weibao.collector.config import ContractConfig
from weibao.collector.contract import Evaluator, MaintenanceSchedule
from weibao.collector.contract.calendar import day_start, local, month_start
from weibao.collector.contract.rules import Scope
from weibao.collector.engine.extras import Extras
from weibao.collector.engine.gate import DependencyGate
from weibao.collector.engine.replay import FAULT_METRICS, month_samples
from weibao.collector.engine.setup import ContractFiles, DeviceBook, device_stamp, load_devices
from weibao.collector.engine.signals import REACH_RULES, FaultSync, quality_rule
from weibao.collector.engine.sweep import Sweeper
from weibao.collector.errors import Fenced
from weibao.collector.storage import SampleStore
from weibao.collector.tickets.ops import ACTIVE, TicketOps
from weibao.collector.tickets.store import Guard
from weibao.core.model import Sample
from weibao.core.wire import IngestBatch

log = logging.getLogger(__name__)

_FAULT = frozenset(FAULT_METRICS)
_MAX_LOOKBACK = timedelta(days=40)
_AHEAD = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _Batch:
    seq: int
    batch: IngestBatch


class ContractEngine:
    """See the module docstring. ``start()`` replays and begins; ``stop()`` ends the worker."""

    def __init__(self, cfg: ContractConfig, files: ContractFiles, ops: TicketOps, store: SampleStore, *,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC), guard: Guard | None = None) -> None:
        self.cfg = cfg
        self._guard = guard
        self.fenced: str | None = None  # why the worker stopped, when a commit was fenced off
        self.files = files
        self.ops = ops
        self.engine = ops.store.engine
        self.samples = store
        self._wall = wall
        self.sync = FaultSync(ops, files.rules, files.calendar)
        self.extras = Extras(ops, files.danger_checks, files.rules.inspection_danger_after,
                             files.rules.evaluation.reopen_window)
        self.sweeper = Sweeper(ops, self.sync, files.rules, files.calendar)
        self._queue: queue.Queue[_Batch | Callable[[], None]] = queue.Queue(maxsize=cfg.queue_max_batches)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._seq_lock = threading.Lock()
        # (newest batch seq the replay covered, devices it replayed): their fault samples in batches up to
        # that seq, still queued then, were read by the replay and are not evaluated again
        self._replays: list[tuple[int, frozenset[str]]] = []
        self.processed_seq = 0
        self._event_max: datetime | None = None
        self._seen: dict[str, datetime] = {}  # device -> newest fault sample evaluated
        self._heard: dict[str, float] = {}  # agent -> monotonic time its last batch was processed
        self._started = time.monotonic()
        self._last_sweep = 0.0
        self._last_prune = 0.0
        self.ready = threading.Event()  # set once the start-up replay is done
        self.book = DeviceBook({}, {}, {}, (-1, -1), {})
        self.evaluator = Evaluator(files.rules, [])
        self.gate = DependencyGate({}, files.rules.evaluation.upstream_tolerance, self.evaluator.begins)
        self.processed = 0

    # -- the ingest side -----------------------------------------------------------------------------------
    def submit(self, batch: IngestBatch) -> None:
        """Queue a committed batch; waits while the queue is full, never drops (see the module docstring)."""
        with self._seq_lock:
            self._seq += 1
            item = _Batch(self._seq, batch)
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=1.0)
                return
            except queue.Full:
                log.warning("contract engine queue full (%d batches); ingest waits", self._queue.maxsize)
        log.info("engine stopping: batch %s left to the next start's replay", batch.batch_id)

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the worker thread (it owns the evaluator); like ``submit``, waits while the queue is
        full, not once the engine stops."""
        while not self._stop.is_set():
            try:
                self._queue.put(fn, timeout=1.0)
                return
            except queue.Full:
                continue

    def reload_maintenance(self) -> None:
        self.call(self._apply_maintenance)

    def status(self) -> dict[str, object]:
        newest = self._event_max
        return {"enabled": True, "ready": self.ready.is_set(), "devices": len(self.book.specs),
                "batches_processed": self.processed, "queued": self._queue.qsize(), "held": self.gate.held,
                "newest_event": newest.isoformat() if newest is not None else None,
                "clock": self.now().isoformat()}

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="weibao-contract", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def now(self) -> datetime:
        """The engine's clock (see the module docstring)."""
        wall = self._wall()
        newest = self._event_max
        if newest is None or wall - newest <= timedelta(seconds=self.cfg.live_horizon_s):
            return local(wall)
        return local(newest)

    def _run(self) -> None:
        with self.ops.store.guarded(self._guard):
            try:
                self._serve()
            except Fenced as exc:
                self.fenced = str(exc)
                self._stop.set()  # ``submit`` stops waiting for a worker that is gone
                log.warning("contract engine stops, its last changes undone: %s", exc)

    def _serve(self) -> None:
        try:
            self.rebuild()
        except Fenced:
            raise
        except Exception:  # the engine keeps serving batches with what it has; the error is logged
            log.exception("contract engine: start-up replay failed")
        self.ready.set()
        interval = self.cfg.sweep_interval_s
        while not self._stop.is_set():
            wait = max(0.0, self._last_sweep + interval - time.monotonic())
            try:
                item = self._queue.get(timeout=min(wait, 1.0)) if wait > 0 else None
            except queue.Empty:
                item = None
            try:
                if isinstance(item, _Batch):
                    self._process(item.batch, item.seq)
                elif item is not None:
                    item()
                if time.monotonic() - self._last_sweep >= interval:
                    self._sweep()
            except Fenced:
                raise
            except Exception:  # one bad batch or pass must not end the worker
                log.exception("contract engine: failed on %s", "a batch" if item is not None else "the sweep")
                self._last_sweep = time.monotonic()

    # -- work ----------------------------------------------------------------------------------------------
    def _schedule(self) -> MaintenanceSchedule:
        return MaintenanceSchedule([*self.files.windows, *(w.window for w in self.ops.store.windows())])

    def _apply_maintenance(self) -> None:
        self.evaluator.set_maintenance(self._schedule())

    def rebuild(self, *, live: bool = False) -> None:
        """Evaluator state for the registered devices, replayed from the stored samples.

        At start-up (``live`` False) a new evaluator is built, every device is replayed and the replay only
        rebuilds state; open episodes are then synced, which finds their tickets. After a registration
        change while running (``live``), the evaluator keeps what it knows of the devices whose registration
        did not change; those whose registration changed are replayed, and their samples it had not
        evaluated yet (batches still queued) are acted on as they are replayed; devices new to it start
        empty and take their batches from the queue, in order, like any live data.
        """
        started = time.monotonic()
        with self._seq_lock:
            seq = self._seq
        self.book = load_devices(self.engine)
        upstream = {name: spec.depends_on for name, spec in self.book.specs.items()}
        if live:
            ev = self.evaluator
            replaying = frozenset(ev.update(self.book.specs.values()))
            self.gate.retarget(upstream)
            for name in set(self._seen) - self.book.specs.keys():
                del self._seen[name]
        else:
            ev = Evaluator(self.files.rules, self.book.specs.values(), maintenance=self._schedule())
            replaying = frozenset(self.book.specs)
            self.evaluator = ev
            self.gate = DependencyGate(upstream, self.files.rules.evaluation.upstream_tolerance, ev.begins)
        self._replays = [(q, devices) for q, devices in self._replays if q > self.processed_seq]
        self._replays.append((seq, replaying))
        if not replaying:
            log.info("contract engine: %d devices, none replayed", len(self.book.specs))
            return
        wall = self._wall()
        starts = {d: t for d, t in self._starts(wall).items() if d in replaying}
        since = min(starts.values(), default=wall)
        seen = dict(self._seen) if live else None
        n = 0

        def replay(s: Sample) -> None:
            nonlocal n
            signals = ev.observe(s)
            n += 1
            last = self._seen.get(s.device)
            if last is None or s.ts > last:
                self._seen[s.device] = s.ts
            if signals and seen is not None and (s.device not in seen or s.ts > seen[s.device]):
                self.sync.handle(signals, ev, self.book, local(s.ts))

        # samples a little ahead of this clock (an agent's clock runs fast) are replayed too
        specs = {d: spec for d, spec in self.book.specs.items() if d in replaying}
        stored = (s for s in month_samples(self.engine, self.samples, specs, self.files.rules.evaluation,
                                           since, wall + _AHEAD, wall - timedelta(hours=self.cfg.replay_raw_hours),
                                           self.book.depth, starts)
                  if s.device in replaying and s.ts >= starts[s.device])
        released = self._released()
        for s in stored:
            self.gate.push((s,), replay, self._seen.get, released)
            if self._event_max is None or s.ts > self._event_max:
                self._event_max = s.ts
        if not live:
            now = self.now()
            for ep in ev.open_episodes(now):
                self.sync.sync(ep, ev, now, allow_ended=False)
        log.info("contract engine: %d devices, %d of them replayed, %d samples since %s in %.1f s",
                 len(self.book.specs), len(replaying), n, since.isoformat(), time.monotonic() - started)

    def _starts(self, wall: datetime) -> dict[str, datetime]:
        """Where each device's replay begins: the month for categories with per-month rows, else the start
        of yesterday (per-day rows, and an episode over midnight); earlier if an open ticket began earlier."""
        today = local(wall).date()
        monthly = {cat for cat, rules in self.files.rules.categories.items()
                   if any(r.scope is Scope.MONTH for r in rules.rows)}
        starts = {name: month_start(today) if spec.category in monthly else day_start(today - timedelta(days=1))
                  for name, spec in self.book.specs.items()}
        for t in self.ops.store.find(state=list(ACTIVE), limit=10_000):
            if t.device in starts and (t.rule in REACH_RULES or quality_rule(t.rule)):
                starts[t.device] = min(starts[t.device], t.opened_at)
        return {name: max(start, wall - _MAX_LOOKBACK) for name, start in starts.items()}

    def _devices_changed(self) -> bool:
        """Whether a registration changed what the evaluator was built from (not just the update times)."""
        stamp = device_stamp(self.engine)
        if stamp == self.book.stamp:
            return False
        book = load_devices(self.engine)
        if (book.specs, book.kinds, book.agents) == (self.book.specs, self.book.kinds, self.book.agents):
            self.book = book
            return False
        return True

    def _process(self, batch: IngestBatch, seq: int) -> None:
        names = {s["device"] for s in batch.samples} | {e["device"] for e in batch.events}
        if not names <= self.book.specs.keys() and self._devices_changed():
            self.rebuild(live=True)
        with self.ops.unit():  # the batch's ticket changes in one transaction (not the replay's: it is long)
            self._evaluate(batch, seq)
        # counted once committed: a feed position recorded from this never passes a batch that was undone
        self.processed += 1
        self.processed_seq = seq

    def _evaluate(self, batch: IngestBatch, seq: int) -> None:
        # a batch committed before a replay is in the evaluator already, for the devices replayed
        replayed = frozenset().union(*(devices for q, devices in self._replays if seq <= q))
        book, extras = self.book, self.extras
        picked = [s for s in batch.samples if s["device"] in book.specs and (
            (s["metric"] in _FAULT and s["device"] not in replayed) or s["metric"] in extras.metrics)]
        depth = book.depth
        picked.sort(key=lambda s: (s["ts"], depth.get(s["device"], 0), s["metric"] != "up"))
        touched: set[str] = set()
        newest = self._event_max
        faults: list[Sample] = []
        with extras.batch():
            for w in picked:
                sample = Sample(w["device"], w["metric"], w["value"], w["ts"], w.get("labels") or {})
                if newest is None or sample.ts > newest:
                    newest = sample.ts
                if sample.metric in _FAULT and sample.device not in replayed:
                    faults.append(sample)
                if sample.metric in extras.metrics:
                    extras.sample(sample, book.kinds.get(sample.device))
                    self.ops.checkpoint()
            for e in sorted(batch.events, key=lambda e: e["ts"]):
                extras.event(e["device"], str(e["kind"]), e["ts"], e.get("data") or {})
                self.ops.checkpoint()
        self._event_max = newest
        self._heard[batch.agent] = time.monotonic()
        self.gate.push(faults, self._evaluator_step(touched), self._seen.get, self._released())
        self._after(touched)

    def _evaluator_step(self, touched: set[str]) -> Callable[[Sample], None]:
        """Evaluate one sample that the gate lets through, and act on what it signals."""
        ev, book, checkpoint = self.evaluator, self.book, self.ops.checkpoint

        def step(sample: Sample) -> None:
            signals = ev.observe(sample)
            last = self._seen.get(sample.device)
            if last is None or sample.ts > last:
                self._seen[sample.device] = sample.ts
            if signals:
                self.sync.handle(signals, ev, book, local(sample.ts))
            touched.add(sample.device)
            checkpoint()
        return step

    def _after(self, touched: set[str]) -> None:
        """What a step of evaluation may have changed beyond its signals: promotions of the faults of the
        devices it touched (each as of its own newest sample), and whose fault an affected device's is."""
        ev, now = self.evaluator, self.now()
        for device in touched:
            for tracker in ev.trackers(device):
                ep = tracker.open_episode(now)
                if ep is not None and ep.affected_by is None and self.sync.promotion_due(ep, ev, now):
                    ticket = self.ops.by_episode(ep.id)
                    if ticket is not None:
                        self.sync.promote(ticket, ep, ev, now)
                        self.ops.checkpoint()
        self.sync.follow_owners(ev, touched, now)

    def _released(self) -> Callable[[str, datetime, float], bool]:
        """When a dependent stops waiting for ``upstream``'s samples to reach ``ts`` + tolerance: the
        upstream is known down at ``ts`` already (its samples reach ``ts``: what comes after cannot change
        whose fault the dependent's is), or its agent has not been heard from for longer than the upstream's
        gap threshold (counted from the engine's start for an agent not heard yet), or, having waited that
        long, its agent's samples are past ``ts`` by more than that threshold while the upstream's are not:
        it is not being reported."""
        mono = time.monotonic()
        agents = self.book.agents
        settings = self.files.rules.evaluation
        newest: dict[str, datetime] = {}
        for device, ts in self._seen.items():
            agent = agents.get(device)
            if agent is not None and (agent not in newest or ts > newest[agent]):
                newest[agent] = ts

        ev = self.evaluator

        def released(upstream: str, ts: datetime, waited_s: float) -> bool:
            spec = self.book.specs.get(upstream)
            if spec is None:
                return True
            reached = self._seen.get(upstream)
            if reached is not None and reached >= ts and ev.root_at(upstream, ts, ts) is not None:
                return True
            threshold = (spec.probe_interval or settings.default_probe_interval) * settings.gap_after_missed_probes
            agent = agents.get(upstream)
            if agent is None:
                return True
            if mono - self._heard.get(agent, self._started) > threshold.total_seconds():
                return True
            ahead = newest.get(agent)
            return (waited_s >= threshold.total_seconds() and ahead is not None
                    and ahead >= ts + self.gate.tolerance + threshold)
        return released

    def _flush_bursts(self, touched: set[str]) -> None:
        """Take the last burst of a loss-or-latency condition once the next one is overdue: a burst's
        samples otherwise wait for the device's next burst (they share one time)."""
        ev, book = self.evaluator, self.book
        clock = self.gap_clock()
        settings = self.files.rules.evaluation
        for device, spec in book.specs.items():
            probe = spec.probe_interval or settings.default_probe_interval
            for tracker in ev.trackers(device):
                pending = tracker.pending_burst
                if pending is not None and clock(device) - pending >= probe:
                    signals = tracker.flush()
                    if signals:
                        self.sync.handle(signals, ev, book, local(pending))
                        self.ops.checkpoint()
                    touched.add(device)

    def gap_clock(self) -> Callable[[str], datetime]:
        """The time each device's silence is judged at, for this sweep.

        An agent that delivered a batch within its devices' shortest gap threshold is alive: maybe it is
        catching up on its spool, so its devices are judged at the newest event time it sent (data that
        is late is not missing). An agent not heard from for longer is silent: wall clock.
        """
        wall = self._wall()
        mono = time.monotonic()
        agents = self.book.agents
        newest: dict[str, datetime] = {}
        for device, ts in self._seen.items():
            agent = agents.get(device)
            if agent is not None and (agent not in newest or ts > newest[agent]):
                newest[agent] = ts
        ev = self.files.rules.evaluation
        threshold: dict[str, float] = {}
        for name, spec in self.book.specs.items():
            probe = (spec.probe_interval or ev.default_probe_interval).total_seconds()
            limit = probe * ev.gap_after_missed_probes
            agent = agents[name]
            threshold[agent] = min(threshold.get(agent, limit), limit)

        gate = self.gate

        def clock(device: str) -> datetime:
            held = gate.oldest(device)  # samples waiting for the upstream are not silence
            agent = agents.get(device)
            if agent is None or agent not in newest:
                at = wall
            else:
                heard = self._heard.get(agent, self._started)
                at = newest[agent] if mono - heard <= threshold.get(agent, 0.0) else wall
            return min(at, held) if held is not None else at
        return clock

    def _sweep(self) -> None:
        self._last_sweep = time.monotonic()
        if self._devices_changed():
            self.rebuild(live=True)
        with self.ops.unit():
            self._sweep_pass()
        # after the unit: an alert is remembered as sent once its outbox row is committed
        self.sweeper.alert(self.now())

    def _sweep_pass(self) -> None:
        touched: set[str] = set()
        self.gate.release(self._evaluator_step(touched), self._seen.get, self._released())
        self._flush_bursts(touched)
        if touched:
            self._after(touched)
        now = self.now()
        if time.monotonic() - self._last_prune > 3600:
            self._last_prune = time.monotonic()
            prev = month_start((month_start(now.date()) - timedelta(days=1)).date())
            self.evaluator.prune(prev)
        self.sweeper.run(self.evaluator, self.book, now, self.gap_clock())
