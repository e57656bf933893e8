"""Rollups (5 min and 1 h: min/avg/max/last/count): computed per batch, upserted, read back.

Each batch's rows are aggregated in memory first (one row per series and bucket), then merged into the
stored rows with one ``INSERT ... ON CONFLICT DO UPDATE``: min/max combine, sum and count
add, ``last`` follows the latest sample time. This runs in the transaction that records the batch id, so
a batch contributes to the rollups exactly once. The upserts go through the driver's own executemany
(psycopg2's execute_values on PostgreSQL): per-row statement building would cost more than the insert.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import aliased

from weibao.collector.state.models import Rollup, Series
from weibao.collector.storage import SeriesKey

RESOLUTIONS = (300, 3600)
Points = list[tuple[int, float]]

_ROLLUP_SQL = (
    'INSERT INTO rollups (series_id, resolution, bucket_ms, "min", "max", "sum", "count", "last", last_ts_ms)'
    " VALUES {values} ON CONFLICT (resolution, bucket_ms, series_id) DO UPDATE SET"
    ' "min" = CASE WHEN excluded."min" < rollups."min" THEN excluded."min" ELSE rollups."min" END,'
    ' "max" = CASE WHEN excluded."max" > rollups."max" THEN excluded."max" ELSE rollups."max" END,'
    ' "sum" = rollups."sum" + excluded."sum",'
    ' "count" = rollups."count" + excluded."count",'
    ' "last" = CASE WHEN excluded.last_ts_ms >= rollups.last_ts_ms THEN excluded."last" ELSE rollups."last" END,'
    " last_ts_ms = CASE WHEN excluded.last_ts_ms >= rollups.last_ts_ms THEN excluded.last_ts_ms"
    " ELSE rollups.last_ts_ms END")
class SeriesIds:
    """(device, metric, labels) -> series id, cached; ids created in a transaction join the cache only
    once it has committed."""

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        with engine.connect() as conn:
            self._ids: dict[SeriesKey, int] = {
                (r.device, r.metric, r.labels): r.id
                for r in conn.execute(select(Series.id, Series.device, Series.metric, Series.labels))}

    def known(self, keys: Iterable[SeriesKey]) -> dict[SeriesKey, int] | None:
        """The ids of ``keys`` if all are cached (committed ids never change), else None."""
        cache = self._ids
        try:
            return {key: cache[key] for key in keys}
        except KeyError:
            return None

    def resolve(self, conn: Connection, keys: Iterable[SeriesKey]) -> tuple[dict[SeriesKey, int], Callable[[], None]]:
        cache = self._ids
        ids: dict[SeriesKey, int] = {}
        missing: set[SeriesKey] = set()
        for key in keys:
            sid = cache.get(key)
            if sid is None:
                missing.add(key)
            else:
                ids[key] = sid
        if not missing:
            return ids, _nothing
        ins = postgresql.insert(Series) if conn.dialect.name == "postgresql" else sqlite.insert(Series)
        conn.execute(ins.on_conflict_do_nothing(),
                     [{"device": d, "metric": m, "labels": lab} for d, m, lab in missing])
        new: dict[SeriesKey, int] = {}
        devices = {d for d, _, _ in missing}
        for r in conn.execute(select(Series.id, Series.device, Series.metric, Series.labels)
                              .where(Series.device.in_(devices))):
            key = (r.device, r.metric, r.labels)
            if key in missing:
                new[key] = ids[key] = r.id

        def publish() -> None:
            with self._lock:
                cache.update(new)

        return ids, publish


def _aggregate(points: Points, width_ms: int) -> dict[int, list[Any]]:
    """bucket start -> [min, max, sum, count, last, last_ts]."""
    out: dict[int, list[Any]] = {}
    for ts, v in points:
        b = ts - ts % width_ms
        agg = out.get(b)
        if agg is None:
            out[b] = [v, v, v, 1, v, ts]
            continue
        if v < agg[0]:
            agg[0] = v
        if v > agg[1]:
            agg[1] = v
        agg[2] += v
        agg[3] += 1
        if ts >= agg[5]:
            agg[4] = v
            agg[5] = ts
    return out


def _merge_hours(sid: int, five: dict[int, list[Any]], add: Callable[[tuple[Any, ...]], None]) -> None:
    # the hour is the merge of its 5-minute buckets: no second pass over the points
    hours: dict[int, list[Any]] = {}
    for bucket, (mn, mx, sm, cnt, last, last_ts) in five.items():
        h = bucket - bucket % 3_600_000
        hour = hours.get(h)
        if hour is None:
            hours[h] = [mn, mx, sm, cnt, last, last_ts]
            continue
        hour[0] = min(hour[0], mn)
        hour[1] = max(hour[1], mx)
        hour[2] += sm
        hour[3] += cnt
        if last_ts >= hour[5]:
            hour[4], hour[5] = last, last_ts
    for h, hour in hours.items():
        add((sid, 3600, h, *hour))


def rollup_rows(series: Mapping[SeriesKey, Points], ids: Mapping[SeriesKey, int]) -> list[tuple[Any, ...]]:
    """One row per (series, resolution, bucket) of the batch: the 5-minute rows, then the hours."""
    five_rows: list[tuple[Any, ...]] = []
    hour_rows: list[tuple[Any, ...]] = []
    add, add_hour = five_rows.append, hour_rows.append
    for key, points in series.items():
        sid = ids[key]
        if len(points) == 1:  # one reading per series per batch
            ts, v = points[0]
            add((sid, 300, ts - ts % 300_000, v, v, v, 1, v, ts))
            add_hour((sid, 3600, ts - ts % 3_600_000, v, v, v, 1, v, ts))
            continue
        times, values = zip(*points, strict=True)
        first, newest = min(times), max(times)
        bucket = first - first % 300_000
        if newest - bucket >= 300_000:  # the batch spans several buckets of this series
            five = _aggregate(points, 300_000)
            for b, agg in five.items():
                add((sid, 300, b, *agg))
            _merge_hours(sid, five, add_hour)
            continue
        # the usual case: a few readings, all in one 5-minute bucket (so in one hour)
        # out of order: the last of the newest readings, as _aggregate keeps
        last = values[-1] if times[-1] == newest else next(v for t, v in reversed(points) if t == newest)
        total = values[0]
        for v in values[1:]:  # in order, as _aggregate adds
            total += v
        mn, mx, n = min(values), max(values), len(values)
        add((sid, 300, bucket, mn, mx, total, n, last, newest))
        add_hour((sid, 3600, first - first % 3_600_000, mn, mx, total, n, last, newest))
    # near the key's order (resolution, bucket, series) without sorting: each batch's rows then land
    # next to each other in the table instead of alternating between two regions of it
    five_rows += hour_rows
    return five_rows


def merge_rows(parts: list[list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """Rows of several batches (each made by :func:`rollup_rows`, in the order they are applied) as one
    row per (series, resolution, bucket), combined as the upsert would combine them one after another."""
    if len(parts) == 1:
        return parts[0]
    merged: dict[tuple[int, int, int], list[Any]] = {}
    find = merged.get
    for rows in parts:
        for row in rows:
            key = (row[1], row[2], row[0])
            m = find(key)
            if m is None:
                merged[key] = list(row)
                continue
            if row[3] < m[3]:
                m[3] = row[3]
            if row[4] > m[4]:
                m[4] = row[4]
            m[5] += row[5]
            m[6] += row[6]
            if row[8] >= m[8]:
                m[7], m[8] = row[7], row[8]
    return [tuple(m) for m in merged.values()]


def _upsert(conn: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    driver: Any = conn.connection.driver_connection
    dbapi_error: type[Exception] = conn.dialect.loaded_dbapi.Error
    cur = driver.cursor()
    try:
        if conn.dialect.name == "postgresql":
            from psycopg2.extras import execute_values  # type: ignore[import-untyped]  # no type information shipped

            execute_values(cur, sql.format(values="%s"), rows, page_size=2000)
        else:
            cur.executemany(sql.format(values="(" + ", ".join("?" * len(rows[0])) + ")"), rows)
    except dbapi_error as exc:
        # the same exception classes SQLAlchemy raises for its own statements (OperationalError...)
        raise DBAPIError.instance(sql, None, exc, dbapi_error) from exc
    finally:
        cur.close()


def apply(conn: Connection, series: Mapping[SeriesKey, Points], ids: Mapping[SeriesKey, int]) -> int:
    """Merge one batch into the rollups; returns the number of rows merged."""
    return upsert(conn, rollup_rows(series, ids))


def upsert(conn: Connection, rows: list[tuple[Any, ...]]) -> int:
    """Merge rows made by :func:`rollup_rows` into the rollups; returns how many."""
    _upsert(conn, _ROLLUP_SQL, rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class Point:
    bucket_ms: int
    min: float
    avg: float
    max: float
    last: float
    count: int


@dataclass(frozen=True, slots=True)
class SeriesRollup:
    labels: dict[str, str]
    points: list[Point]


def read(conn: Connection, *, device: str, metric: str, resolution: int, from_ms: int, to_ms: int,
         labels: dict[str, str] | None = None) -> list[SeriesRollup]:
    """The buckets of ``device``/``metric`` starting in [from_ms, to_ms), one entry per label set;
    ``labels`` keeps only series whose labels include those pairs."""
    out: list[SeriesRollup] = []
    for s in conn.execute(select(Series.id, Series.labels).where(Series.device == device, Series.metric == metric)
                          .order_by(Series.labels)):
        parsed: dict[str, str] = json.loads(s.labels)
        if labels and any(parsed.get(k) != v for k, v in labels.items()):
            continue
        q = (select(Rollup.bucket_ms, Rollup.min, Rollup.max, Rollup.sum, Rollup.count.label("n"), Rollup.last)
             .where(Rollup.series_id == s.id, Rollup.resolution == resolution, Rollup.bucket_ms >= from_ms,
                    Rollup.bucket_ms < to_ms).order_by(Rollup.bucket_ms))
        points = [Point(r.bucket_ms, r.min, r.sum / r.n, r.max, r.last, r.n) for r in conn.execute(q)]
        if points:
            out.append(SeriesRollup(parsed, points))
    return out


def latest(conn: Connection, device: str | None = None, metrics: Iterable[str] | None = None) -> list[Any]:
    """The newest value of every series (of ``device``, of ``metrics``, if given): ``last`` of its newest
    5-minute bucket (device, metric, labels, ts_ms, value); one index seek per series."""
    inner = aliased(Rollup)
    newest = (select(inner.bucket_ms).where(inner.series_id == Series.id, inner.resolution == 300)
              .order_by(inner.bucket_ms.desc()).limit(1).correlate(Series).scalar_subquery())
    q = (select(Series.device, Series.metric, Series.labels, Rollup.last_ts_ms.label("ts_ms"),
                Rollup.last.label("value"))
         .join(Rollup, (Rollup.series_id == Series.id) & (Rollup.resolution == 300) & (Rollup.bucket_ms == newest)))
    if device is not None:
        q = q.where(Series.device == device)
    if metrics is not None:
        q = q.where(Series.metric.in_(list(metrics)))
    return list(conn.execute(q).all())


def prune(conn: Connection, resolution: int, older_than_ms: int) -> int:
    res = conn.execute(delete(Rollup).where(Rollup.resolution == resolution, Rollup.bucket_ms < older_than_ms))
    return int(res.rowcount or 0)


def _nothing() -> None:
    return None
