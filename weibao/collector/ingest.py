"""Ingest of one batch: validate, refuse with the reason named, apply whole or not at all, once per id.

Order of the checks: token (401/403) and size (413) in the HTTP route before the body is parsed; here the
JSON (400), the fields (422, each problem naming its field), the times (422 naming each sample or event
dated more than ``limits.max_future_s`` ahead of the collector's clock or older than the raw retention),
the devices (422 naming the unknown ones, 403 naming those of another agent), and a batch id seen
before with another body (409: a resend is byte-identical, so another body under a known id is a bug or
an attack; the identical resend answers 200 "duplicate").
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
its batches are applied one by one, as above; so are a group's batches after any other failure, so that
only a batch that cannot be stored is refused, not every batch that happened to share its transaction.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
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
from weibao.collector.validate import MAX_PROBLEMS, invalid, parse
from weibao.core.ratelog import Throttle
from weibao.core.timeutil import from_ms, now_ms, to_ms
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
    digest: str | None
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
                 metrics: IngestMetrics, write_lock: FileLock | None = None, *, raw_days: float = 30.0) -> None:
        self.engine = engine
        self.store = store
        self.registry = registry
        self.limits = limits
        self.raw_days = raw_days  # the raw retention: older samples would be pruned at once
        self._conflicts = Throttle(log)  # one line a minute per agent, however many it sends
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
        try:
            fast = parse_batch_fast(body)
        except ValidationError as exc:  # an invalid event, named by the model
            raise invalid(exc) from exc
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
        if ts_ms is None:
            ts_ms = [to_ms(s["ts"]) for s in batch.samples]
        self._check_times(batch, ts_ms)
        self.registry.check(batch.agent, {s["device"] for s in batch.samples} | {e["device"] for e in batch.events})
        return batch, ts_ms

    def _check_times(self, batch: IngestBatch, ts_ms: list[int]) -> None:
        """422 naming each sample and event dated too far ahead of our clock or past the raw retention.

        A time far ahead would stand as the device's newest reading, and every later one at the real time
        would look older than it; a time from before retention would be pruned at once. Every time that
        passes is also one the calendar can show in any time zone."""
        now = now_ms()
        lo = now - int(self.raw_days * 86_400_000)
        hi = now + int(self.limits.max_future_s * 1000)
        event_ms = [to_ms(e["ts"]) for e in batch.events]
        if (not ts_ms or (min(ts_ms) >= lo and max(ts_ms) <= hi)) and all(lo <= ms <= hi for ms in event_ms):
            return
        problems: list[dict[str, str]] = []
        for what, times in (("samples", ts_ms), ("events", event_ms)):
            for i, ms in enumerate(times):
                if ms > hi:
                    problems.append({"field": f"{what}.{i}.ts", "message": f"more than "
                                     f"{self.limits.max_future_s:g} s ahead of the collector's clock (check the "
                                     "agent's time synchronisation)"})
                elif ms < lo:
                    problems.append({"field": f"{what}.{i}.ts",
                                     "message": f"older than the raw retention ({self.raw_days:g} days)"})
        shown = problems[:MAX_PROBLEMS]
        raise Refused(422, "bad_time", f"{len(problems)} sample(s)/event(s) out of the accepted time range: "
                      + ", ".join(p["field"] for p in shown), shown)

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
        return self._stored(batch_id) is not None

    def _stored(self, batch_id: str) -> tuple[str | None, int] | None:
        """(body digest, received ms) of a batch id already applied; None when it is new."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Batch.digest, Batch.received_ms).where(Batch.batch_id == batch_id)).first()
        return None if row is None else (row.digest, row.received_ms)

    def _again(self, batch: IngestBatch, bid: str, digest: str | None,
               stored: tuple[str | None, int]) -> Outcome:
        """The answer to a batch id applied before: a duplicate when the body is the same, else 409."""
        first, received_ms = stored
        if digest is not None and first is not None and digest != first:
            self._conflicts(batch.agent, "agent %s reused batch id %s (first received %s) with different "
                            "contents: refused", batch.agent, bid, from_ms(received_ms).isoformat(timespec="seconds"))
            raise Refused(409, "batch_conflict", f"batch {bid} was received before with different contents; a "
                          "resend must be identical (new data needs a new batch id)")
        return Outcome(bid, True, len(batch.samples), len(batch.events))

    def apply(self, batch: IngestBatch, ts_ms: list[int] | None = None, digest: str | None = None) -> Outcome:
        """Store ``batch`` once; ``digest`` (of its request body) tells a resend from a reused id."""
        bid = str(batch.batch_id)
        stored = self._stored(bid)
        if stored is not None:
            return self._again(batch, bid, digest, stored)
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
        pending = _Pending(batch, bid, prepared, rows, digest)
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
        retry: list[_Pending] = []
        if len(group) > 1 and all(p.rows is not None for p in group):
            merged = rollup.merge_rows([p.rows for p in group if p.rows is not None])  # before the lock
        try:
            lock = self.write_lock.held() if self.write_lock is not None else contextlib.nullcontext()
            with lock:
                if len(group) == 1:
                    p = group[0]
                    p.outcome = self._apply(p.batch, p.bid, p.prepared, p.rows, p.digest)
                else:
                    self._apply_group(group, merged)
        except Exception as exc:
            # a failure of the store itself (locked, unreachable, full) is every member's: all answer it now;
            # any other may be one member's data: each is tried again alone, so that only the batch that
            # cannot be stored answers with the failure, not every agent whose batch it met
            alone = len(group) > 1 and not _store_failure(exc)
            for p in group:
                if p.outcome is None:
                    p.afters.clear()  # what they would publish (new series ids) was rolled back
                    if alone:
                        retry.append(p)
                    else:
                        p.error = exc
        finally:
            again = {id(p) for p in retry}
            for p in group:
                p.done = id(p) not in again
        for p in group:
            for after in p.afters:
                after()
        for p in retry:
            self._commit([p])

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
                     "samples": len(p.batch.samples), "events": len(p.batch.events), "digest": p.digest}
                    for p in members])
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
                try:
                    p.outcome = self._apply(p.batch, p.bid, p.prepared, p.rows, p.digest)
                except Refused as exc:  # that id came with another body: this member alone is refused
                    p.error = exc
        else:
            self.metrics.committed()
            for publish in publishes:
                publish()
            for p in members:
                p.outcome = Outcome(p.bid, False, len(p.batch.samples), len(p.batch.events))
        for p in group:
            if p.outcome is None and p.error is None:  # a twin of a member: a duplicate, or 409 if it differs
                first = firsts[p.bid]
                try:
                    if first.outcome is not None:  # the first's body is the one stored
                        p.outcome = self._again(p.batch, p.bid, p.digest, (first.digest, received))
                        continue
                    stored = self._stored(p.bid)  # the first was refused: compare with what is stored
                    if stored is None:
                        assert first.error is not None
                        raise first.error
                    p.outcome = self._again(p.batch, p.bid, p.digest, stored)
                except Refused as exc:
                    p.error = exc

    def _apply(self, batch: IngestBatch, bid: str, prepared: PreparedSamples,
               rows: list[tuple[Any, ...]] | None, digest: str | None) -> Outcome:
        received = now_ms()
        after: Callable[[], None] | None = None
        n_s, n_e = len(batch.samples), len(batch.events)
        with self.engine.connect() as conn:
            try:
                with conn.begin():
                    # first statement: in SQLite it opens the write transaction; in PostgreSQL a concurrent
                    # twin of this batch waits here on the primary key and then fails as a duplicate
                    conn.execute(insert(Batch).values(
                        batch_id=bid, agent=batch.agent, received_ms=received, samples=n_s, events=n_e,
                        digest=digest))
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
                stored = self._stored(bid)
                if stored is not None:
                    return self._again(batch, bid, digest, stored)
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
            outcome = self.apply(batch, ts_ms, hashlib.sha256(body).hexdigest())
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


def _store_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the store failing (locked, unreachable, out of space) rather than one batch's data."""
    return isinstance(exc, OperationalError | StorageUnavailable | sqlite3.OperationalError | OSError)


def _event_row(e: Any, bid: str, agent: str) -> dict[str, Any]:
    return {"device": e["device"], "kind": str(e["kind"]), "ts_ms": to_ms(e["ts"]),
            "data": json.dumps(e.get("data") or {}, ensure_ascii=False, default=str), "batch_id": bid,
            "agent": agent}


def _nothing() -> None:
    return None
