"""Raw samples to an InfluxDB 2/3 or VictoriaMetrics server as line protocol over ``/api/v2/write``.

One line per sample: measurement = metric (dots kept), tags = ``device`` plus the sample's labels, field
``value``, timestamp in ms (or ns). A server keeps one value per (series, time), so writing a batch again
after a failure overwrites points with themselves: that is what makes the write safe to repeat before the
collector commits the batch id (see weibao.collector.ingest). Retention is the server's own setting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from typing import Any

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from sqlalchemy import Connection

from weibao.collector.config import InfluxConfig
from weibao.collector.errors import StorageError, StorageUnavailable
from weibao.collector.storage import PreparedSamples, RawPoint, SeriesKey

log = logging.getLogger(__name__)

CHUNK_LINES = 20_000  # keeps each request well below servers' default body limits
_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\\": "\\\\"})
_TAG = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\=", "\\": "\\\\"})


def series_prefix(metric: str, device: str, labels: dict[str, str] | Any) -> str:
    """``measurement,tag=v,...`` for one series, tags sorted by key (what InfluxDB prefers)."""
    tags = {"device": device}
    for k, v in labels.items():
        if v != "":  # line protocol has no empty tag values
            tags["label_device" if k == "device" else k] = v
    body = ",".join(f"{k.translate(_TAG)}={v.translate(_TAG)}" for k, v in sorted(tags.items()))
    return f"{metric.translate(_MEASUREMENT)},{body}"


def to_lines(batch: PreparedSamples, *, ns: bool = False,
             prefixes: dict[SeriesKey, str] | None = None) -> list[str]:
    """One line per sample; ``prefixes`` caches each series' escaped ``measurement,tags value=``."""
    scale = 1_000_000 if ns else 1
    cache = {} if prefixes is None else prefixes
    lines: list[str] = []
    for key, points in batch.series.items():
        prefix = cache.get(key)
        if prefix is None:
            device, metric, labels_key = key
            prefix = cache[key] = series_prefix(metric, device, batch.labels[labels_key]) + " value="
        lines.extend([f"{prefix}{value!r} {ts * scale}" for ts, value in points])
    return lines


class InfluxSampleStore:
    """Synchronous writes: the batch is acknowledged to the agent only after the server took it."""

    name = "influxdb"
    joins_state_transaction = False
    readable = False

    def read_raw(self, metrics: Collection[str], from_ms: int, to_ms: int) -> Iterator[RawPoint]:
        return iter(())

    def __init__(self, cfg: InfluxConfig) -> None:
        self.cfg = cfg
        self._client = InfluxDBClient(url=cfg.url, token=cfg.token_value(), org=cfg.org,
                                      timeout=int(cfg.timeout_s * 1000))
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._precision: Any = WritePrecision.NS if cfg.precision == "ns" else WritePrecision.MS
        self._prefixes: dict[SeriesKey, str] = {}

    def write(self, batch: PreparedSamples, state: Connection) -> Callable[[], None]:
        if len(self._prefixes) > 500_000:
            self._prefixes.clear()
        lines = to_lines(batch, ns=self.cfg.precision == "ns", prefixes=self._prefixes)
        for start in range(0, len(lines), CHUNK_LINES):
            body = "\n".join(lines[start:start + CHUNK_LINES]).encode()
            try:
                self._write.write(bucket=self.cfg.bucket, org=self.cfg.org, record=body,
                                  write_precision=self._precision)
            except ApiException as exc:
                status = int(getattr(exc, "status", 0) or 0)
                msg = f"time-series server answered {status} {getattr(exc, 'reason', '')}".strip()
                if status >= 500 or status in (0, 429):
                    raise StorageUnavailable(msg) from exc
                raise StorageError(msg) from exc
            except Exception as exc:  # urllib3 and socket errors: the server is away
                raise StorageUnavailable(f"time-series server unreachable: {type(exc).__name__}") from exc
        return _nothing

    def prune(self, older_than_ms: int, state: Connection) -> int:
        return 0  # the server's retention period applies

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]  # the library leaves close() unannotated


def _nothing() -> None:
    return None
