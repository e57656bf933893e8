"""Restart recovery: the stored samples of the fault metrics, in time order, to rebuild the evaluator.

Per-day and per-month rows need the whole current month of down time, so the engine replays from the
start of the month (Asia/Shanghai):

- raw samples (read back through the raw store, ``SampleStore.read_raw``) for the newest ``raw_hours``;
- before that, and for the whole month when the raw store is not ``readable`` (InfluxDB/VictoriaMetrics), the 5-minute
  rollups of the state store: a bucket becomes samples spaced less than the gap threshold apart (so a
  bucket is not mistaken for a monitoring gap), valued at the bucket's minimum for ``up`` (any 0 in the
  bucket: down for the bucket) and its average for loss and latency. Down time from rollups is thus
  rounded out to whole 5-minute buckets.

The replayed samples only rebuild the evaluator; tickets are then synced episode by episode, which finds
existing tickets by their episode id (device + condition + start) and so never opens one twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from weibao.collector.contract import DeviceSpec
from weibao.collector.contract.rules import EvaluationSettings
from weibao.collector.state.models import Rollup, Series
from weibao.collector.storage import SampleStore
from weibao.core.model import Sample
from weibao.core.timeutil import from_ms, to_ms

FAULT_METRICS = ("up", "icmp.loss_pct", "icmp.rtt_ms")
BUCKET_MS = 300_000


def _order(s: Sample, depth: Mapping[str, int]) -> tuple[int, int]:
    # at equal times upstream devices first (dependents attach to their ticket), and `up` before loss
    # and latency (a device that is down is not also a loss fault)
    return depth.get(s.device, 0), 0 if s.metric == "up" else 1


def raw_samples(store: SampleStore, lo_ms: int, hi_ms: int,
                depth: Mapping[str, int]) -> Iterator[Sample]:
    """Raw fault-metric samples in [lo_ms, hi_ms) from a readable raw store (nothing from others)."""
    pending: list[Sample] = []
    current = None
    for ts_ms, device, metric, value in store.read_raw(FAULT_METRICS, lo_ms, hi_ms):
        if ts_ms != current:
            yield from sorted(pending, key=lambda s: _order(s, depth))
            pending = []
            current = ts_ms
        pending.append(Sample(device, metric, value, from_ms(ts_ms)))
    yield from sorted(pending, key=lambda s: _order(s, depth))


def rollup_samples(engine: Engine, devices: Mapping[str, DeviceSpec], settings: EvaluationSettings,
                   lo_ms: int, hi_ms: int, depth: Mapping[str, int],
                   starts: Mapping[str, int] | None = None) -> Iterator[Sample]:
    """Synthetic samples from the 5-minute rollups of buckets starting in [lo_ms, hi_ms)."""
    q = (select(Rollup.bucket_ms, Series.device, Series.metric, Rollup.min, Rollup.sum, Rollup.count.label("n"))
         .join(Series, Series.id == Rollup.series_id)
         .where(Rollup.resolution == 300, Rollup.bucket_ms >= lo_ms, Rollup.bucket_ms < hi_ms,
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
                bucket.append(Sample(r.device, r.metric, value, from_ms(r.bucket_ms + k * step_ms)))
        yield from sorted(bucket, key=lambda s: (s.ts, *_order(s, depth)))


def month_samples(engine: Engine, store: SampleStore, devices: Mapping[str, DeviceSpec],
                  settings: EvaluationSettings, month_start: datetime, until: datetime,
                  raw_since: datetime, depth: Mapping[str, int],
                  starts: Mapping[str, datetime] | None = None) -> Iterator[Sample]:
    """Every replayable sample of the fault metrics from ``month_start`` to ``until``, in time order: raw
    from ``raw_since`` on (SQLite raw store), 5-minute rollups before. ``starts``: a later beginning per
    device, for which no rollup samples are made up (the caller skips its raw samples)."""
    start_by = {d: to_ms(t) for d, t in starts.items()} if starts is not None else None
    start_ms = to_ms(month_start)
    end_ms = to_ms(until) + 1
    if store.readable:
        raw_from = min(end_ms, max(start_ms, to_ms(raw_since)))
        raw_from -= raw_from % BUCKET_MS if raw_from > start_ms else 0
    else:
        raw_from = end_ms
    if raw_from > start_ms:
        yield from rollup_samples(engine, devices, settings, start_ms, raw_from, depth, start_by)
    if raw_from < end_ms:
        yield from raw_samples(store, raw_from, end_ms, depth)
