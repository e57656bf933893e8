"""Ingest of one batch: validate, refuse with the reason named, apply whole or not at all, once per id.

Order of the checks: token (401/403) and size (413) in the HTTP route before the body is parsed; here the
JSON (400), the fields (422, each problem naming its field), the devices (422 naming the unknown ones).
A body of the usual shape is parsed by ``weibao.core.wire.parse_batch_fast``; any other body, valid or not, by
the pydantic model, so refusals and their messages come from pydantic alone.

Exactly once, by layout:

* raw samples in the state database (SQLite default): the batch id row, the raw samples, the rollups
  and the events are written in ONE transaction. Either all commit or none.
* raw samples elsewhere (InfluxDB/VictoriaMetrics, or a separate SQLite file): the raw points are
  written FIRST (before the write lock: workers write them in parallel), then one state transaction
  records the batch id with the rollups and events. A failure before that commit leaves no batch id,
  so the agent sends the batch again; the repeated raw write overwrites each (series, time) point with
  the same value, and the rollups, which are not idempotent, are only ever applied by the one commit
  that also records the id. A batch id found already recorded (before or, for a concurrent twin, at
  commit through the primary key) adds nothing.

Group commit: batches that arrive while another is being written wait in a queue; the next thread to
commit takes all of them (up to ``GROUP_MAX_SAMPLES``) into ONE transaction: their batch ids, raw
samples, events and their rollup rows merged first (consecutive batches mostly touch the same series and
buckets), with one sync to disk. All of them commit or none; each request is answered only after that
commit. Should the group meet a batch id committed meanwhile by another process, it is rolled back and
its batches are applied one by one, as above.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from weibao.collector import rollup
from weibao.collector.auth import Principal, Role
from weibao.collector.config import LimitsConfig
from weibao.collector.errors import Refused, StorageError, StorageUnavailable
from weibao.collector.locks import FileLock
from weibao.collector.metrics import IngestMetrics
from weibao.collector.registry import Registry
from weibao.collector.state.models import Batch, EventRow
from weibao.collector.storage import PreparedSamples, SampleStore, SeriesKey
from weibao.collector.validate import MAX_PROBLEMS, parse
from weibao.core.timeutil import now_ms, to_ms
from weibao.core.wire import IngestBatch, parse_batch_fast

log = logging.getLogger(__name__)

GROUP_MAX_SAMPLES = 100_000  # one transaction stores at most about this many samples
_NO_LABELS = "{}"


@dataclass(frozen=True, slots=True)
class Outcome:
    batch_id: str
    duplicate: bool
    samples: int
    events: int

    def body(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "duplicate": self.duplicate, "samples": self.samples,
                "events": self.events}


@dataclass(slots=True)
class _Pending:
    """A checked batch waiting for its commit; ``done`` once committed (``outcome``) or failed (``error``)."""

    batch: IngestBatch
    bid: str
    prepared: PreparedSamples
    rows: list[tuple[Any, ...]] | None
    outcome: Outcome | None = None
    error: BaseException | None = None
    done: bool = False
    afters: list[Callable[[], None]] = field(default_factory=list)


def _refusal(exc: BaseException) -> Refused | None:
    """The answer for a failure to store (None: not a storage failure, let it raise)."""
    if isinstance(exc, Refused):
        return exc
    if isinstance(exc, StorageUnavailable):
        return Refused(503, "storage_unavailable", str(exc))
    if isinstance(exc, StorageError):
        return Refused(500, "storage_error", str(exc))
    if isinstance(exc, OperationalError | sqlite3.OperationalError):
        # locked, full, away: nothing was committed, the agent keeps the batch and tries again
        log.warning("state store failed: %s", getattr(exc, "orig", exc))
        return Refused(503, "state_unavailable", "state store unavailable, retry later")
    return None


class Ingestor:
    """Applies batches to the state store and the raw-sample store."""

    def __init__(self, engine: Engine, store: SampleStore, registry: Registry, limits: LimitsConfig,
                 metrics: IngestMetrics, write_lock: FileLock | None = None) -> None:
        self.engine = engine
        self.store = store
        self.registry = registry
        self.limits = limits
        self.metrics = metrics
        # SQLite has one writer at a time: waiting on a lock wakes at once, SQLite's busy handler sleeps
        self.write_lock = write_lock
        self.series_ids = rollup.SeriesIds(engine)
        self.listeners: list[Callable[[IngestBatch], None]] = []
        # last statements of every ingest transaction, given its new batches (the engine feed of replicas)
        self.feed: Callable[[Connection, Sequence[IngestBatch]], None] | None = None
        self._label_keys: dict[tuple[tuple[str, str], ...], str] = {}
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._committer = threading.Lock()  # held by the thread that commits the queue

    # --- checks ---------------------------------------------------------------------------------

    def check(self, principal: Principal, body: bytes) -> IngestBatch:
        return self._check(principal, body)[0]

    def _check(self, principal: Principal, body: bytes) -> tuple[IngestBatch, list[int] | None]:
        """The batch, and each sample's time in ms when the fast parse could tell it."""
        if len(body) > self.limits.max_batch_bytes:
            raise Refused(413, "too_large", f"batch of {len(body)} bytes exceeds {self.limits.max_batch_bytes}")
        fast = parse_batch_fast(body)
        ts_ms: list[int] | None = None
        if fast is None:
            batch: IngestBatch = parse(body, IngestBatch)
        else:
            batch, ts_ms = fast
        if len(batch.samples) > self.limits.max_batch_samples or len(batch.events) > self.limits.max_batch_events:
            raise Refused(413, "too_large", f"batch of {len(batch.samples)} samples and {len(batch.events)} "
                          f"events exceeds {self.limits.max_batch_samples} / {self.limits.max_batch_events}")
        if principal.role != Role.AGENT or batch.agent != principal.name:
            raise Refused(403, "wrong_agent", f"this token may not send batches for agent {batch.agent!r}")
        names = {s["device"] for s in batch.samples} | {e["device"] for e in batch.events}
        unknown = self.registry.unknown(names)
        if unknown:
            shown = ", ".join(unknown[:MAX_PROBLEMS]) + (" ..." if len(unknown) > MAX_PROBLEMS else "")
            raise Refused(422, "unknown_device", f"unknown device(s), not registered by any agent: {shown}",
                          [{"field": "device", "message": f"unknown device {n!r}"} for n in unknown[:MAX_PROBLEMS]])
        return batch, ts_ms

    # --- apply ----------------------------------------------------------------------------------

    def prepare(self, batch: IngestBatch, ts_ms: list[int] | None = None) -> PreparedSamples:
        """The samples grouped by series; ``ts_ms`` (each sample's time in ms, in order) saves the
        conversion of every timestamp."""
        series: dict[SeriesKey, list[tuple[int, float]]] = {}
        labels: dict[str, dict[str, str]] = {_NO_LABELS: {}}
        keys = self._label_keys
        if len(keys) > 100_000:
            keys.clear()
        if ts_ms is None:
            ts_ms = [to_ms(s["ts"]) for s in batch.samples]
        find = series.get
        for s, ms in zip(batch.samples, ts_ms, strict=True):
            lab = s.get("labels")
            if lab:
                items = tuple(lab.items()) if len(lab) == 1 else tuple(sorted(lab.items()))
                lk = keys.get(items)
                if lk is None:
                    lk = keys[items] = json.dumps(dict(items), separators=(",", ":"), ensure_ascii=False)
                if lk not in labels:
                    labels[lk] = dict(items)
                key = (s["device"], s["metric"], lk)
            else:
                key = (s["device"], s["metric"], _NO_LABELS)
            points = find(key)
            if points is None:
                series[key] = [(ms, s["value"])]
            else:
                points.append((ms, s["value"]))
        return PreparedSamples(series=series, labels=labels, count=len(batch.samples))

    def seen(self, batch_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(Batch.batch_id).where(Batch.batch_id == batch_id)).first() is not None

    def apply(self, batch: IngestBatch, ts_ms: list[int] | None = None) -> Outcome:
        bid = str(batch.batch_id)
        n_s, n_e = len(batch.samples), len(batch.events)
        if self.seen(bid):
            return Outcome(bid, True, n_s, n_e)
        prepared = self.prepare(batch, ts_ms)
        # rows built here, before the write lock, cost no other worker any waiting: the rollup rows
        # when every series already has its id, the raw store's rows likewise
        known = self.series_ids.known(prepared.series)
        rows = rollup.rollup_rows(prepared.series, known) if known is not None else None
        stage = getattr(self.store, "stage", None)  # optional in the SampleStore protocol
        if stage is not None and prepared.count:
            stage(prepared)
        if not self.store.joins_state_transaction and prepared.count:
            # raw points first, outside the write lock (workers write them in parallel): repeating them is
            # harmless, and only the commit that records the batch id below adds the rollups
            try:
                with self.engine.connect() as conn:
                    self.store.write(prepared, conn)()
            except Exception as exc:
                refused = _refusal(exc)
                if refused is None:
                    raise
                raise refused from exc
        pending = _Pending(batch, bid, prepared, rows)
        with self._queue_lock:
            self._queue.append(pending)
        with self._committer:
            while not pending.done:  # a group committed meanwhile may have taken this batch
                self._commit(self._take())
        if pending.error is not None:
            refused = _refusal(pending.error)
            if refused is None:
                raise pending.error
            raise refused from pending.error
        assert pending.outcome is not None
        return pending.outcome

    def _take(self) -> list[_Pending]:
        """The oldest waiting batches, at least one, up to GROUP_MAX_SAMPLES samples in all."""
        with self._queue_lock:
            queue = self._queue
            n, total = 0, 0
            while n < len(queue) and (n == 0 or total + queue[n].prepared.count <= GROUP_MAX_SAMPLES):
                total += queue[n].prepared.count
                n += 1
            group, self._queue = queue[:n], queue[n:]
        return group

    def _commit(self, group: list[_Pending]) -> None:
        """Store ``group`` (one transaction when it holds several batches) and settle each member."""
        merged: list[tuple[Any, ...]] | None = None
        if len(group) > 1 and all(p.rows is not None for p in group):
            merged = rollup.merge_rows([p.rows for p in group if p.rows is not None])  # before the lock
        try:
            lock = self.write_lock.held() if self.write_lock is not None else contextlib.nullcontext()
            with lock:
                if len(group) == 1:
                    p = group[0]
                    p.outcome = self._apply(p.batch, p.bid, p.prepared, p.rows)
                else:
                    self._apply_group(group, merged)
        except Exception as exc:  # every member of a failed group gets the failure
            for p in group:
                if p.outcome is None:
                    p.error = exc
                    p.afters.clear()  # what they would publish (new series ids) was rolled back
        finally:
            for p in group:
                p.done = True
        for p in group:
            for after in p.afters:
                after()

    def _apply_group(self, group: list[_Pending], merged: list[tuple[Any, ...]] | None) -> None:
        """Several batches in one transaction; a twin (same id twice in the group) is a duplicate."""
        firsts: dict[str, _Pending] = {}
        for p in group:
            firsts.setdefault(p.bid, p)
        members = list(firsts.values())
        received = now_ms()
        publishes: list[Callable[[], None]] = []
        try:
            with self.engine.connect() as conn, conn.begin():
                # first statement: opens the write transaction (see _apply)
                conn.execute(insert(Batch), [
                    {"batch_id": p.bid, "agent": p.batch.agent, "received_ms": received,
                     "samples": len(p.batch.samples), "events": len(p.batch.events)} for p in members])
                parts: list[list[tuple[Any, ...]]] = []
                for p in members:
                    rows = p.rows
                    if rows is None:
                        ids, publish = self.series_ids.resolve(conn, p.prepared.series)
                        publishes.append(publish)
                        rows = rollup.rollup_rows(p.prepared.series, ids)
                    parts.append(rows)
                    if self.store.joins_state_transaction and p.prepared.count:
                        p.afters.append(self.store.write(p.prepared, conn))
                rollup.upsert(conn, merged if merged is not None else rollup.merge_rows(parts))
                events = [_event_row(e, p.bid, p.batch.agent) for p in members for e in p.batch.events]
                if events:
                    conn.execute(insert(EventRow), events)
                if self.feed is not None:
                    self.feed(conn, [p.batch for p in members])
        except IntegrityError:
            # a batch id committed meanwhile by another process: nothing of the group was kept
            for p in members:
                p.afters.clear()
                p.outcome = self._apply(p.batch, p.bid, p.prepared, p.rows)
        else:
            self.metrics.committed()
            for publish in publishes:
                publish()
            for p in members:
                p.outcome = Outcome(p.bid, False, len(p.batch.samples), len(p.batch.events))
        for p in group:
            if p.outcome is None:  # a twin of a member
                first = firsts[p.bid]
                assert first.outcome is not None
                p.outcome = Outcome(p.bid, True, first.outcome.samples, first.outcome.events)

    def _apply(self, batch: IngestBatch, bid: str, prepared: PreparedSamples,
               rows: list[tuple[Any, ...]] | None) -> Outcome:
        received = now_ms()
        after: Callable[[], None] | None = None
        n_s, n_e = len(batch.samples), len(batch.events)
        with self.engine.connect() as conn:
            try:
                with conn.begin():
                    # first statement: in SQLite it opens the write transaction; in PostgreSQL a concurrent
                    # twin of this batch waits here on the primary key and then fails as a duplicate
                    conn.execute(insert(Batch).values(
                        batch_id=bid, agent=batch.agent, received_ms=received, samples=n_s, events=n_e))
                    publish = _nothing
                    if rows is None:
                        ids, publish = self.series_ids.resolve(conn, prepared.series)
                        rows = rollup.rollup_rows(prepared.series, ids)
                    if self.store.joins_state_transaction and prepared.count:
                        after = self.store.write(prepared, conn)
                    rollup.upsert(conn, rows)
                    if batch.events:
                        conn.execute(insert(EventRow), [_event_row(e, bid, batch.agent) for e in batch.events])
                    if self.feed is not None:
                        self.feed(conn, [batch])
            except IntegrityError:
                if self.seen(bid):
                    return Outcome(bid, True, n_s, n_e)
                raise
        self.metrics.committed()
        publish()
        if after is not None:
            after()
        return Outcome(bid, False, n_s, n_e)

    def ingest(self, principal: Principal, body: bytes) -> Outcome:
        """Check and apply one request body; raises Refused. Counts what was stored in ``metrics``."""
        # a batch allocates many short-lived objects and frees them by reference counting; cycle
        # collection in the middle would walk them all, several times per batch, for nothing
        collecting = gc.isenabled()
        gc.disable()
        try:
            batch, ts_ms = self._check(principal, body)
            outcome = self.apply(batch, ts_ms)
        finally:
            if collecting:
                gc.enable()
        if outcome.duplicate:
            self.metrics.duplicate()
        else:
            self.metrics.accepted(outcome.samples, outcome.events)
            for listener in self.listeners:
                listener(batch)
        return outcome

    def subscribe(self, listener: Callable[[IngestBatch], None]) -> None:
        """Call ``listener`` with every batch once it is committed (never for a duplicate).

        Listeners run in the ingest thread before the agent gets its answer: they must only hand the
        batch on (to a queue), never evaluate it in place.
        """
        self.listeners.append(listener)

    # --- maintenance ----------------------------------------------------------------------------

    def prune(self, *, raw_days: float, rollup_days: dict[int, float], batch_days: float) -> dict[str, int]:
        """Delete what retention no longer keeps; small transactions so that ingest keeps flowing."""
        now = now_ms()
        day = 86_400_000
        out: dict[str, int] = {}
        lock = self.write_lock.held if self.write_lock is not None else contextlib.nullcontext
        with lock(), self.engine.begin() as conn:
            out["samples"] = self.store.prune(now - int(raw_days * day), conn)
        for res, days in rollup_days.items():
            with lock(), self.engine.begin() as conn:
                out[f"rollups_{res}"] = rollup.prune(conn, res, now - int(days * day))
        with lock(), self.engine.begin() as conn:
            res_b = conn.execute(delete(Batch).where(Batch.received_ms < now - int(batch_days * day)))
            out["batch_ids"] = int(res_b.rowcount or 0)
        return out


def _event_row(e: Any, bid: str, agent: str) -> dict[str, Any]:
    return {"device": e["device"], "kind": str(e["kind"]), "ts_ms": to_ms(e["ts"]),
            "data": json.dumps(e.get("data") or {}, ensure_ascii=False, default=str), "batch_id": bid,
            "agent": agent}


def _nothing() -> None:
    return None
