"""Restart recovery: the stored samples of the fault metrics, in time order, to rebuild the evaluator.

Per-day and per-month rows need the whole current month of down time, so the engine replays from the
start of the month (Asia/Shanghai):

- raw samples (SQLite raw store) for the newest ``raw_hours``;
- before that, and for the whole month when raw samples live in InfluxDB/VictoriaMetrics, the 5-minute
  rollups of the state store: a bucket becomes samples spaced less than the gap threshold apart (so a
  bucket is not mistaken for a monitoring gap), valued at the bucket's minimum for ``up`` (any 0 in the
  bucket: down for the bucket) and its average for loss and latency. Down time from rollups is thus
  rounded out to whole 5-minute buckets.

The replayed samples only rebuild the evaluator; tickets are then synced episode by episode, which finds
existing tickets by their episode id (device + condition + start) and so never opens one twice.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from weibao.collector.contract import DeviceSpec
from weibao.collector.contract.rules import EvaluationSettings
from weibao.collector.state.models import Rollup, Series
from weibao.collector.storage import SampleStore
from weibao.core.model import Sample

FAULT_METRICS = ("up", "icmp.loss_pct", "icmp.rtt_ms")
BUCKET_MS = 300_000


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _order(s: Sample, depth: Mapping[str, int]) -> tuple[int, int]:
    # at equal times upstream devices first (dependents attach to their ticket), and `up` before loss
    # and latency (a device that is down is not also a loss fault)
    return depth.get(s.device, 0), 0 if s.metric == "up" else 1


def raw_samples(store: SampleStore, from_ms: int, to_ms: int,
                depth: Mapping[str, int]) -> Iterator[Sample]:
    """Raw fault-metric samples in [from_ms, to_ms) from the SQLite raw store (nothing for other stores)."""
    path = getattr(store, "path", None)
    if store.name != "sqlite" or path is None:
        return
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        marks = ",".join("?" * len(FAULT_METRICS))
        series = {int(r[0]): (str(r[1]), str(r[2])) for r in conn.execute(
            f"SELECT id, device, metric FROM ts_series WHERE labels = '{{}}' AND metric IN ({marks})",  # noqa: S608
            FAULT_METRICS)}
        if not series:
            return
        ids = ",".join(str(i) for i in series)
        rows = conn.execute(f"SELECT ts_ms, series_id, value FROM ts_samples WHERE ts_ms >= ? AND ts_ms < ?"  # noqa: S608
                            f" AND series_id IN ({ids}) ORDER BY ts_ms", (from_ms, to_ms))
        pending: list[Sample] = []
        current = None
        for ts_ms, sid, value in rows:
            if ts_ms != current:
                yield from sorted(pending, key=lambda s: _order(s, depth))
                pending = []
                current = ts_ms
            device, metric = series[sid]
            pending.append(Sample(device, metric, float(value), _dt(ts_ms)))
        yield from sorted(pending, key=lambda s: _order(s, depth))
    finally:
        conn.close()


def rollup_samples(engine: Engine, devices: Mapping[str, DeviceSpec], settings: EvaluationSettings,
                   from_ms: int, to_ms: int, depth: Mapping[str, int],
                   starts: Mapping[str, int] | None = None) -> Iterator[Sample]:
    """Synthetic samples from the 5-minute rollups of buckets starting in [from_ms, to_ms)."""
    q = (select(Rollup.bucket_ms, Series.device, Series.metric, Rollup.min, Rollup.sum, Rollup.count.label("n"))
         .join(Series, Series.id == Rollup.series_id)
         .where(Rollup.resolution == 300, Rollup.bucket_ms >= from_ms, Rollup.bucket_ms < to_ms,
                Series.labels == "{}", Series.metric.in_(FAULT_METRICS))
         .order_by(Rollup.bucket_ms))
    spacing = max(1.0, settings.gap_after_missed_probes - 1.0)
    with engine.connect() as conn:
        bucket: list[Sample] = []
        current = None
        for r in conn.execute(q):
            if r.bucket_ms != current:
                yield from sorted(bucket, key=lambda s: (s.ts, *_order(s, depth)))
                bucket = []
                current = r.bucket_ms
            spec = devices.get(r.device)
            if spec is None or not r.n or (starts is not None and r.bucket_ms + BUCKET_MS <= starts.get(r.device, 0)):
                continue
            probe = spec.probe_interval or settings.default_probe_interval
            step_ms = max(1000, int(probe / timedelta(milliseconds=1) * spacing))
            value = float(r.min) if r.metric == "up" else float(r.sum) / r.n
            for k in range(math.ceil(BUCKET_MS / step_ms)):
                bucket.append(Sample(r.device, r.metric, value, _dt(r.bucket_ms + k * step_ms)))
        yield from sorted(bucket, key=lambda s: (s.ts, *_order(s, depth)))


def month_samples(engine: Engine, store: SampleStore, devices: Mapping[str, DeviceSpec],
                  settings: EvaluationSettings, month_start: datetime, until: datetime,
                  raw_since: datetime, depth: Mapping[str, int],
                  starts: Mapping[str, datetime] | None = None) -> Iterator[Sample]:
    """Every replayable sample of the fault metrics from ``month_start`` to ``until``, in time order: raw
    from ``raw_since`` on (SQLite raw store), 5-minute rollups before. ``starts``: a later beginning per
    device, for which no rollup samples are made up (the caller skips its raw samples)."""
    start_by = {d: int(t.timestamp() * 1000) for d, t in starts.items()} if starts is not None else None
    start_ms = int(month_start.timestamp() * 1000)
    end_ms = int(until.timestamp() * 1000) + 1
    if store.name == "sqlite":
        raw_from = min(end_ms, max(start_ms, int(raw_since.timestamp() * 1000)))
        raw_from -= raw_from % BUCKET_MS if raw_from > start_ms else 0
    else:
        raw_from = end_ms
    if raw_from > start_ms:
        yield from rollup_samples(engine, devices, settings, start_ms, raw_from, depth, start_by)
    if raw_from < end_ms:
        yield from raw_samples(store, raw_from, end_ms, depth)
