"""What a report reads from the collector's stores: devices, ``up`` samples, events, rollup statistics.

Nothing is polled live: every figure comes from the state store (devices, events, rollups, tickets,
maintenance windows) and the raw-sample store, so a past period gives the same figures whenever it is
rebuilt. ``read_up`` is the one place that reads raw samples (see its docstring).
"""

from __future__ import annotations

import json
import math
import sqlite3
from array import array
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from weibao.collector.contract import DeviceSpec, device_spec
from weibao.collector.contract.rules import EvaluationSettings
from weibao.collector.engine.replay import BUCKET_MS, rollup_samples
from weibao.collector.state.models import Device, EventRow, Rollup, Series
from weibao.collector.storage import SampleStore
from weibao.core.inventory import Category
from weibao.core.timeutil import SHANGHAI


@dataclass(slots=True)
class UpSamples:
    """One device's ``up`` samples in time order: times (ms since the epoch) and values in two flat arrays
    (a month of a large site is millions of samples: no object per sample for the garbage collector)."""

    ts: array[int] = field(default_factory=lambda: array("q"))
    values: array[float] = field(default_factory=lambda: array("d"))

    def add(self, ts_ms: int, value: float) -> None:
        self.ts.append(ts_ms)
        self.values.append(value)

    def __len__(self) -> int:
        return len(self.ts)

    def count_between(self, from_ms: int, to_ms: int) -> int:
        """How many samples lie in [from_ms, to_ms)."""
        return bisect_left(self.ts, to_ms) - bisect_left(self.ts, from_ms)


UpSeries = dict[str, UpSamples]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A registered device as reports show it."""

    name: str
    kind: str
    category: str
    spec: DeviceSpec
    active: bool


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    """Milliseconds since the epoch as contract time (Asia/Shanghai)."""
    return datetime.fromtimestamp(value / 1000, UTC).astimezone(SHANGHAI)


def read_devices(engine: Engine) -> dict[str, DeviceInfo]:
    """Every device ever registered (retired ones too: a past period may have had them), by name."""
    with engine.connect() as conn:
        rows = conn.execute(select(Device.name, Device.kind, Device.category, Device.depends_on, Device.spec,
                                   Device.active).order_by(Device.name)).all()
    out: dict[str, DeviceInfo] = {}
    for r in rows:
        try:
            public = json.loads(r.spec or "{}")
        except ValueError:
            public = {}
        public = {**public, "name": r.name, "category": r.category}
        spec = replace(device_spec(public), category=Category(r.category), depends_on=r.depends_on)
        out[r.name] = DeviceInfo(r.name, r.kind, r.category, spec, bool(r.active))
    return out


def _raw_kept_since(store: SampleStore) -> datetime | None:
    """The oldest raw sample the SQLite raw store still keeps (None: no raw samples to read there)."""
    path = getattr(store, "path", None)
    if store.name != "sqlite" or path is None:
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute("SELECT min(ts_ms) FROM ts_samples").fetchone()
    finally:
        conn.close()
    return from_ms(int(row[0])) if row and row[0] is not None else None


def _raw_up(store: SampleStore, devices: Mapping[str, DeviceSpec], from_ms: int, to_ms: int) -> UpSeries:
    """Raw ``up`` samples in [from_ms, to_ms) from the SQLite raw store, per device in time order."""
    path = getattr(store, "path", None)
    out: UpSeries = defaultdict(UpSamples)
    if store.name != "sqlite" or path is None:
        return out
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        series = {int(r[0]): str(r[1]) for r in conn.execute(
            "SELECT id, device FROM ts_series WHERE metric = 'up' AND labels = '{}'") if r[1] in devices}
        if not series:
            return out
        ids = ",".join(str(i) for i in series)
        lists = {sid: out[name] for sid, name in series.items()}
        adds = {sid: (u.ts.append, u.values.append) for sid, u in lists.items()}
        rows = conn.execute(f"SELECT ts_ms, series_id, value FROM ts_samples WHERE ts_ms >= ? AND ts_ms < ?"  # noqa: S608
                            f" AND series_id IN ({ids}) ORDER BY ts_ms", (from_ms, to_ms))
        for ts_ms, sid, value in rows:
            add_ts, add_value = adds[sid]
            add_ts(ts_ms)
            add_value(value)
    finally:
        conn.close()
    return out


def read_up(engine: Engine, store: SampleStore, devices: Mapping[str, DeviceSpec], settings: EvaluationSettings,
            start: datetime, end: datetime) -> UpSeries:
    """The ``up`` samples of ``devices`` in [start, end), per device in time order.

    Raw samples where the raw store keeps them, the 5-minute rollups before that (a bucket becomes samples
    spaced closer than the gap threshold, valued at the bucket's minimum: any 0 in it is down for the
    bucket), as the contract engine's restart replay reads them (engine/replay.py). This is the one
    place that reads samples for reports.
    """
    kept = _raw_kept_since(store)
    start_ms, end_ms = ms(start), ms(end)
    raw_from = end_ms if kept is None else min(end_ms, max(start_ms, ms(kept)))
    if raw_from > start_ms:  # rollups up to whole buckets, raw samples from the bucket after
        raw_from -= raw_from % BUCKET_MS
    out: UpSeries = defaultdict(UpSamples)
    if raw_from > start_ms:
        for s in rollup_samples(engine, devices, settings, start_ms, raw_from, {}):
            if s.metric == "up" and start <= s.ts < end and not math.isnan(s.value):
                out[s.device].add(ms(s.ts), s.value)
    if raw_from < end_ms:
        for name, raw in _raw_up(store, devices, max(start_ms, raw_from), end_ms).items():
            got = out[name]  # stored values are finite: ingest refuses anything else
            got.ts.extend(raw.ts)
            got.values.extend(raw.values)
    return out


@dataclass(frozen=True, slots=True)
class StoredEvent:
    device: str
    kind: str
    ts: datetime
    data: dict[str, Any]


def read_events(engine: Engine, start: datetime, end: datetime,
                kinds: Iterable[str] | None = None) -> list[StoredEvent]:
    """Events (trap, config_changed, rebooted, agent_gap) stamped in [start, end), oldest first."""
    q = (select(EventRow.device, EventRow.kind, EventRow.ts_ms, EventRow.data)
         .where(EventRow.ts_ms >= ms(start), EventRow.ts_ms < ms(end)).order_by(EventRow.ts_ms, EventRow.id))
    if kinds is not None:
        q = q.where(EventRow.kind.in_(list(kinds)))
    out = []
    with engine.connect() as conn:
        for r in conn.execute(q):
            try:
                data = json.loads(r.data or "{}")
            except ValueError:
                data = {}
            out.append(StoredEvent(r.device, r.kind, from_ms(r.ts_ms), data if isinstance(data, dict) else {}))
    return out


@dataclass(frozen=True, slots=True)
class SeriesStats:
    """Peak (largest bucket maximum) and 95th percentile of the bucket averages of one series."""

    device: str
    metric: str
    labels: dict[str, str]
    peak: float
    p95: float
    buckets: int


def p95(values: list[float]) -> float:
    """The nearest-rank 95th percentile: the smallest value with at least 95 % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def series_stats(engine: Engine, metrics: Iterable[str], start: datetime, end: datetime,
                 resolution: int) -> list[SeriesStats]:
    """Peak and p95 of every series of ``metrics`` over the rollup buckets starting in [start, end)."""
    q = (select(Series.id, Series.device, Series.metric, Series.labels, Rollup.max, Rollup.sum,
                Rollup.count.label("n"))
         .join(Rollup, Rollup.series_id == Series.id)
         .where(Series.metric.in_(list(metrics)), Rollup.resolution == resolution,
                Rollup.bucket_ms >= ms(start), Rollup.bucket_ms < ms(end))
         .order_by(Series.id))
    out: list[SeriesStats] = []
    with engine.connect() as conn:
        current: Any = None
        peak = -math.inf
        avgs: list[float] = []

        def flush() -> None:
            if current is not None and avgs:
                out.append(SeriesStats(current.device, current.metric, json.loads(current.labels), peak,
                                       p95(avgs), len(avgs)))

        for r in conn.execute(q):
            if current is None or r.id != current.id:
                flush()
                current, peak, avgs = r, -math.inf, []
            if r.n:
                peak = max(peak, float(r.max))
                avgs.append(float(r.sum) / r.n)
        flush()
    return out


def bucket_series(engine: Engine, device: str, metric: str, start: datetime, end: datetime,
                  resolution: int = 300) -> list[tuple[datetime, float, float, float]]:
    """(bucket start, min, avg, max) of an unlabelled series over [start, end) from the rollups."""
    q = (select(Rollup.bucket_ms, Rollup.min, Rollup.max, Rollup.sum, Rollup.count.label("n"))
         .join(Series, Series.id == Rollup.series_id)
         .where(Series.device == device, Series.metric == metric, Series.labels == "{}",
                Rollup.resolution == resolution, Rollup.bucket_ms >= ms(start), Rollup.bucket_ms < ms(end))
         .order_by(Rollup.bucket_ms))
    with engine.connect() as conn:
        return [(from_ms(r.bucket_ms), float(r.min), float(r.sum) / r.n, float(r.max))
                for r in conn.execute(q) if r.n]


def on_battery_buckets(engine: Engine, start: datetime, end: datetime) -> dict[str, int]:
    """Per UPS: the number of 5-minute buckets in [start, end) in which ``ups.on_battery`` read 1."""
    q = (select(Series.device, Rollup.max)
         .join(Rollup, Rollup.series_id == Series.id)
         .where(Series.metric == "ups.on_battery", Rollup.resolution == 300,
                Rollup.bucket_ms >= ms(start), Rollup.bucket_ms < ms(end)))
    out: dict[str, int] = defaultdict(int)
    with engine.connect() as conn:
        for r in conn.execute(q):
            if float(r.max) >= 1:
                out[r.device] += 1
    return dict(out)


BUCKET_S = BUCKET_MS // 1000
