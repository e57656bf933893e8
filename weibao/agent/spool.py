"""The agent's durable spool: samples and events on disk (SQLite, WAL) until the collector acknowledges them.

Rows are appended in one transaction per poll round. The shipper takes the oldest rows as a batch,
and the batch assignment (a UUID on each row) is committed *before* the batch is sent: after a crash
the same batch_id is re-sent with the same rows, and the collector's dedupe makes delivery exactly-once.
A batch the collector refuses for good moves whole to the dead-letter table, with the HTTP status and
the collector's reason. The spool is bounded (rows and payload bytes): when full, the oldest rows are
dropped first and counted.

Blocking (sqlite3): the daemon calls it from worker threads; one lock serialises the connection.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from weibao.core.model import Event, Sample
from weibao.core.wire import WireEvent, WireSample, event_json, sample_json

log = logging.getLogger(__name__)

SPOOL_FILE = "spool.db"

# the collector's own checks, so that one row it would refuse never sinks a whole batch
_SAMPLE: TypeAdapter[WireSample] = TypeAdapter(WireSample)
_EVENT: TypeAdapter[WireEvent] = TypeAdapter(WireEvent)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('s', 'e')),
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS items_batch ON items (batch_id);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS dead (
    batch_id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    status INTEGER,
    reason TEXT NOT NULL,
    samples INTEGER NOT NULL,
    events INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


DEFAULT_MAX_ROWS = 2_000_000
DEFAULT_MAX_BYTES = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SpoolLimits:
    """How much the spool may hold; the oldest rows go first when either bound is passed."""

    max_rows: int = DEFAULT_MAX_ROWS
    max_bytes: int = DEFAULT_MAX_BYTES
    dead_max: int = 1_000  # dead-letter batches kept; the oldest are pruned (and counted)


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows assigned to one shipment; re-read after a crash, it has the same id and the same rows."""

    batch_id: str
    samples: list[dict[str, Any]]
    events: list[dict[str, Any]]
    attempts: int

    def __len__(self) -> int:
        return len(self.samples) + len(self.events)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    batch_id: str
    at: float
    status: int | None
    reason: str
    samples: int
    events: int


@dataclass(frozen=True, slots=True)
class SpoolStats:
    rows: int
    payload_bytes: int
    pending_batches: int
    oldest_created: float | None
    dead: list[DeadLetter]
    counters: dict[str, int]
    meta: dict[str, Any]


def _dumps(obj: Any) -> str:
    # allow_nan=False: NaN is not JSON, and one such row would make the collector refuse a whole batch
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)


class Spool:
    """A bounded on-disk queue of samples and events with persistent batch assignment."""

    def __init__(self, path: Path, limits: SpoolLimits | None = None) -> None:
        self.path = path
        self.limits = limits or SpoolLimits()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        path.chmod(0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed round survives power loss too, not only a killed process
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM items").fetchone()
        self._rows, self._bytes = int(row[0]), int(row[1])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing ---------------------------------------------------------------------------------

    def append(self, samples: Iterable[Sample], events: Iterable[Event] = ()) -> int:
        """Store one poll round in one transaction; returns the rows stored.

        Rows the wire format refuses (NaN, naive timestamps, bad names) are refused here and counted.
        """
        now = time.time()
        rows: list[tuple[str, str, float]] = []
        bad = 0
        for s in samples:
            try:
                payload = sample_json(s)
                _SAMPLE.validate_python(payload)
                rows.append(("s", _dumps(payload), now))
            except ValueError as exc:  # pydantic.ValidationError is a ValueError
                bad += 1
                log.warning("refused a sample of %s (%s): %s", s.device, s.metric, str(exc).splitlines()[0])
        for e in events:
            try:
                payload = event_json(e)
                _EVENT.validate_python(payload)
                rows.append(("e", _dumps(payload), now))
            except ValueError as exc:
                bad += 1
                log.warning("refused an event of %s (%s): %s", e.device, e.kind, str(exc).splitlines()[0])
        if not rows and not bad:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO items (kind, payload, created) VALUES (?, ?, ?)", rows)
                if bad:
                    self._bump("refused_invalid", bad)
                self._rows += len(rows)
                self._bytes += sum(len(r[1]) for r in rows)
                self._enforce_bounds()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._recount()
                raise
        return len(rows)

    def _recount(self) -> None:
        row = self._db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM items").fetchone()
        self._rows, self._bytes = int(row[0]), int(row[1])

    def _enforce_bounds(self) -> None:
        """Drop the oldest rows until both bounds hold again (inside the caller's transaction)."""
        over_rows = self._rows - self.limits.max_rows
        dropped = 0
        if over_rows > 0:
            dropped += self._drop_oldest(over_rows)
        while self._bytes > self.limits.max_bytes and self._rows > 0:
            # estimate how many rows free enough bytes, then drop that many (at least one)
            avg = max(1, self._bytes // max(1, self._rows))
            dropped += self._drop_oldest(max(1, (self._bytes - self.limits.max_bytes) // avg + 1))
        if dropped:
            self._bump("dropped_full", dropped)
            log.warning("spool full: dropped the %d oldest rows (limits: %d rows, %d bytes)",
                        dropped, self.limits.max_rows, self.limits.max_bytes)

    def _drop_oldest(self, n: int) -> int:
        cur = self._db.execute(
            "DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY id LIMIT ?) "
            "RETURNING length(payload), batch_id", (n,))
        gone = cur.fetchall()
        self._rows -= len(gone)
        self._bytes -= sum(int(g[0]) for g in gone)
        # a batch whose rows are all gone has nothing left to send
        for bid in {g[1] for g in gone if g[1] is not None}:
            left = self._db.execute("SELECT 1 FROM items WHERE batch_id = ? LIMIT 1", (bid,)).fetchone()
            if left is None:
                self._db.execute("DELETE FROM batches WHERE batch_id = ?", (bid,))
        return len(gone)

    def _bump(self, name: str, n: int = 1) -> None:
        self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))

    def bump(self, name: str, n: int = 1) -> None:
        """Add to a named counter shown by ``weibao agent status``."""
        with self._lock:
            self._bump(name, n)

    def set_meta(self, name: str, value: Any) -> None:
        with self._lock:
            self._db.execute("INSERT INTO meta (name, value) VALUES (?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, _dumps(value)))

    # --- shipping ----------------------------------------------------------------------------------

    def next_batch(self, max_items: int = 5_000, max_bytes: int = 4_000_000) -> Batch | None:
        """The oldest batch already assigned (after a crash or a failed send), else a new one.

        A new batch's assignment is committed before it is returned, so the caller may send it at once.
        """
        with self._lock:
            row = self._db.execute("SELECT batch_id, attempts FROM batches ORDER BY created, rowid LIMIT 1"
                                   ).fetchone()
            if row is None:
                ids = self._db.execute("SELECT id, length(payload) FROM items WHERE batch_id IS NULL "
                                       "ORDER BY id LIMIT ?", (max_items,)).fetchall()
                if not ids:
                    return None
                chosen: list[int] = []
                size = 0
                for item_id, length in ids:
                    if chosen and size + int(length) > max_bytes:
                        break
                    chosen.append(int(item_id))
                    size += int(length)
                bid = str(uuid.uuid4())
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute("INSERT INTO batches (batch_id, created) VALUES (?, ?)", (bid, time.time()))
                    self._db.execute("UPDATE items SET batch_id = ? WHERE id BETWEEN ? AND ? AND batch_id IS NULL",
                                     (bid, chosen[0], chosen[-1]))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                row = (bid, 0)
            bid, attempts = str(row[0]), int(row[1])
            samples: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            for kind, payload in self._db.execute(
                    "SELECT kind, payload FROM items WHERE batch_id = ? ORDER BY id", (bid,)):
                (samples if kind == "s" else events).append(json.loads(payload))
            if not samples and not events:
                self._db.execute("DELETE FROM batches WHERE batch_id = ?", (bid,))
                return None
            return Batch(bid, samples, events, attempts)

    def record_attempt(self, batch_id: str, error: str | None) -> None:
        with self._lock:
            self._db.execute("UPDATE batches SET attempts = attempts + 1, last_error = ? WHERE batch_id = ?",
                             (error, batch_id))

    def ack(self, batch_id: str) -> int:
        """The collector acknowledged the batch: its rows leave the spool. Returns the rows removed."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute("DELETE FROM items WHERE batch_id = ? RETURNING length(payload)",
                                       (batch_id,))
                gone = cur.fetchall()
                self._db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
                self._bump("shipped_rows", len(gone))
                self._bump("shipped_batches")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._rows -= len(gone)
            self._bytes -= sum(int(g[0]) for g in gone)
            return len(gone)

    def dead_letter(self, batch: Batch, status: int | None, reason: str) -> None:
        """Move a batch the collector refused for good to the dead-letter table, with why."""
        body = _dumps({"samples": batch.samples, "events": batch.events})
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute("DELETE FROM items WHERE batch_id = ? RETURNING length(payload)",
                                       (batch.batch_id,))
                gone = cur.fetchall()
                self._db.execute("DELETE FROM batches WHERE batch_id = ?", (batch.batch_id,))
                self._db.execute("INSERT OR REPLACE INTO dead (batch_id, at, status, reason, samples, events, body)"
                                 " VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (batch.batch_id, time.time(), status, reason[:2000], len(batch.samples),
                                  len(batch.events), body))
                self._bump("dead_batches")
                self._bump("dead_rows", len(batch))
                pruned = self._db.execute(
                    "DELETE FROM dead WHERE batch_id IN (SELECT batch_id FROM dead ORDER BY at DESC "
                    "LIMIT -1 OFFSET ?) RETURNING batch_id", (self.limits.dead_max,)).fetchall()
                if pruned:
                    self._bump("dead_pruned", len(pruned))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._rows -= len(gone)
            self._bytes -= sum(int(g[0]) for g in gone)
        log.error("batch %s refused by the collector (status %s): %s; %d samples and %d events moved "
                  "to the dead-letter table", batch.batch_id, status, reason, len(batch.samples),
                  len(batch.events))

    # --- reading -----------------------------------------------------------------------------------

    def depth(self) -> int:
        with self._lock:
            return self._rows

    def stats(self) -> SpoolStats:
        with self._lock:
            return read_stats(self._db)


def read_stats(db: sqlite3.Connection) -> SpoolStats:
    row = db.execute("SELECT count(*), coalesce(sum(length(payload)), 0), min(created) FROM items").fetchone()
    pending = int(db.execute("SELECT count(*) FROM batches").fetchone()[0])
    dead = [DeadLetter(str(r[0]), float(r[1]), None if r[2] is None else int(r[2]), str(r[3]), int(r[4]),
                       int(r[5]))
            for r in db.execute("SELECT batch_id, at, status, reason, samples, events FROM dead ORDER BY at")]
    counters = {str(k): int(v) for k, v in db.execute("SELECT name, value FROM counters")}
    meta: dict[str, Any] = {}
    for k, v in db.execute("SELECT name, value FROM meta"):
        try:
            meta[str(k)] = json.loads(v)
        except ValueError:
            meta[str(k)] = v
    return SpoolStats(int(row[0]), int(row[1]), pending, None if row[2] is None else float(row[2]), dead,
                      counters, meta)


def open_stats(path: Path) -> SpoolStats:
    """Read a spool's state without writing to it (for ``weibao agent status`` beside a running agent)."""
    if not path.exists():
        raise FileNotFoundError(f"no spool at {path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return read_stats(db)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # the agent is creating it right now
            raise FileNotFoundError(f"spool at {path} is not set up yet") from exc
        raise
    finally:
        db.close()

