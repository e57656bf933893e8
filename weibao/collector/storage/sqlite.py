"""Raw samples in SQLite (WAL): a series table and a (series, time) keyed sample table, pruned by age.

In the default layout the tables live in the state database itself, and a batch's samples are written
on the state transaction's own connection, so the batch id, rollups and raw samples commit together.
With a separate file (the state store on PostgreSQL) writes are idempotent instead: the key is
(series, time) and a repeated write replaces the row with the same value.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection

from weibao.collector.errors import StorageUnavailable
from weibao.collector.storage import PreparedSamples, RawPoint, SeriesKey

log = logging.getLogger(__name__)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ts_series (id INTEGER PRIMARY KEY, device TEXT NOT NULL, metric TEXT NOT NULL,"
    " labels TEXT NOT NULL, UNIQUE (device, metric, labels))",
    # time first: a batch appends at the end of the tree instead of touching one page per series, and
    # retention is one range delete; reads of one series scan the time range they ask for
    "CREATE TABLE IF NOT EXISTS ts_samples (ts_ms INTEGER NOT NULL, series_id INTEGER NOT NULL,"
    " value REAL NOT NULL, PRIMARY KEY (ts_ms, series_id)) WITHOUT ROWID",
)
INSERT = "INSERT OR REPLACE INTO ts_samples (series_id, ts_ms, value) VALUES (?, ?, ?)"
# the same, columns in key order (ts_ms, series_id, value)
_INSERT_KEYED = "INSERT OR REPLACE INTO ts_samples (ts_ms, series_id, value) VALUES (?, ?, ?)"


def open_sqlite(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # acknowledged samples must survive a power cut
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _driver(state: Connection) -> sqlite3.Connection:
    return cast(sqlite3.Connection, state.connection.driver_connection)


class SqliteSampleStore:
    """Raw samples in ``path``; ``shared=True`` when ``path`` is the state database itself."""

    name = "sqlite"
    readable = True

    def __init__(self, path: Path, *, shared: bool) -> None:
        self.path = path
        self.joins_state_transaction = shared
        self._own = None if shared else open_sqlite(path)
        self._lock = threading.Lock()
        self._ids: dict[SeriesKey, int] = {}
        conn = open_sqlite(path) if shared else self._own
        assert conn is not None
        for stmt in SCHEMA:
            conn.execute(stmt)
        self._ids = {(d, m, lab): i for i, d, m, lab in conn.execute(
            "SELECT id, device, metric, labels FROM ts_series")}
        if shared:
            conn.close()

    def _conn(self, state: Connection) -> sqlite3.Connection:
        if self._own is not None:
            return self._own
        return _driver(state)

    def write(self, batch: PreparedSamples, state: Connection) -> Callable[[], None]:
        conn = self._conn(state)
        with self._lock:
            try:
                if self._own is not None:
                    conn.execute("BEGIN IMMEDIATE")
                try:
                    pending = self._insert(conn, batch)
                    if self._own is not None:
                        conn.execute("COMMIT")
                except BaseException:
                    if self._own is not None and conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:  # locked, disk full: the batch can be sent again
                raise StorageUnavailable(f"raw-sample store: {exc}") from exc
        if self._own is not None:
            self._ids.update(pending)
            return _nothing
        # ids of new series exist only once the state transaction commits
        return lambda: self._ids.update(pending)

    def stage(self, batch: PreparedSamples) -> None:
        """The rows of ``batch`` when every series already has its id (committed ids never change);
        ``write`` then only inserts them. Not sorted: a batch's times are the newest, so its rows go to
        the end of the tree in any order (sorting measured no faster in all)."""
        ids = self._ids
        try:
            rows = [(ts, ids[key], value) for key, points in batch.series.items() for ts, value in points]
        except KeyError:
            return
        batch.staged[self.name] = rows

    def _insert(self, conn: sqlite3.Connection, batch: PreparedSamples) -> dict[SeriesKey, int]:
        staged = batch.staged.get(self.name)
        if staged is not None:
            conn.executemany(_INSERT_KEYED, staged)
            return {}
        ids = self._ids
        pending: dict[SeriesKey, int] = {}
        rows: list[tuple[int, int, float]] = []
        cur = conn.cursor()
        for key, points in batch.series.items():
            sid = ids.get(key)
            if sid is None:
                cur.execute("INSERT INTO ts_series (device, metric, labels) VALUES (?, ?, ?)"
                            " ON CONFLICT DO NOTHING", key)
                found = cur.execute("SELECT id FROM ts_series WHERE device = ? AND metric = ? AND labels = ?",
                                    key).fetchone()
                sid = int(found[0])
                pending[key] = sid
            rows.extend([(sid, ts, value) for ts, value in points])
        cur.executemany(INSERT, rows)
        cur.close()
        return pending

    def prune(self, older_than_ms: int, state: Connection) -> int:
        conn = self._conn(state)
        with self._lock:
            cur = conn.execute("DELETE FROM ts_samples WHERE ts_ms < ?", (older_than_ms,))
        return max(cur.rowcount, 0)

    def read_raw(self, metrics: Collection[str], from_ms: int, to_ms: int) -> Iterator[RawPoint]:
        """On a read-only connection of its own: a long read never holds up a writer (WAL)."""
        wanted = list(metrics)
        if not wanted:
            return
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            marks = ",".join("?" * len(wanted))
            series = {int(r[0]): (str(r[1]), str(r[2])) for r in conn.execute(
                f"SELECT id, device, metric FROM ts_series WHERE labels = '{{}}' AND metric IN ({marks})",  # noqa: S608
                wanted)}
            if not series:
                return
            ids = ",".join(str(i) for i in series)
            rows = conn.execute(f"SELECT ts_ms, series_id, value FROM ts_samples WHERE ts_ms >= ? AND ts_ms < ?"  # noqa: S608
                                f" AND series_id IN ({ids}) ORDER BY ts_ms", (from_ms, to_ms))
            for ts_ms, sid, value in rows:
                device, metric = series[sid]
                yield int(ts_ms), device, metric, float(value)
        finally:
            conn.close()

    def count(self, state: Connection) -> int:
        row: Any = self._conn(state).execute("SELECT count(*) FROM ts_samples").fetchone()
        return int(row[0])

    def close(self) -> None:
        if self._own is not None:
            self._own.close()


def _nothing() -> None:
    return None
