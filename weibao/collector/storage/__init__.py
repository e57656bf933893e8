"""Raw time-series backends behind one small Protocol; one module per backend (sqlite, influx).

A backend that fails raises ``weibao.collector.errors.StorageError`` (``StorageUnavailable`` when the
agent should retry the batch later).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection

from weibao.collector.config import CollectorConfig

# (device, metric, canonical labels JSON)
SeriesKey = tuple[str, str, str]
# one raw sample read back: (ms since the epoch, device, metric, value)
RawPoint = tuple[int, str, str, float]


@dataclass(frozen=True, slots=True)
class PreparedSamples:
    """The samples of one batch grouped by series: times in ms since the epoch (UTC), values finite."""

    series: Mapping[SeriesKey, list[tuple[int, float]]]
    labels: Mapping[str, Mapping[str, str]]  # canonical labels JSON -> labels
    count: int
    # rows a store computed ahead of its write (``stage``, outside the write lock), by store name
    staged: dict[str, Any] = field(default_factory=dict)


class SampleStore(Protocol):
    """Where raw samples go. Writes must be idempotent per (series, time): a retry overwrites, never adds."""

    name: str
    # True: write() and prune() run inside the state store's transaction (same SQLite file), so one
    # commit covers raw samples, rollups and the batch id
    joins_state_transaction: bool

    # A store may also offer ``stage(batch) -> None``: work for ``write`` done ahead of it, outside the
    # write lock; it is optional, so that a store without it needs nothing.

    def write(self, batch: PreparedSamples, state: Connection) -> Callable[[], None]:
        """Store ``batch``; the returned callable is called once the state transaction has committed."""
        ...

    def prune(self, older_than_ms: int, state: Connection) -> int:
        """Delete raw samples older than ``older_than_ms``; returns how many (0 where the server does it)."""
        ...

    # True when ``read_raw`` gives samples back. An InfluxDB-protocol server is only written to: reading it
    # back would tie weibao to one query language, so what needs history reads the rollups instead.
    readable: bool

    def read_raw(self, metrics: Collection[str], from_ms: int, to_ms: int) -> Iterator[RawPoint]:
        """The label-less samples of ``metrics`` in [from_ms, to_ms), in time order (nothing when not
        ``readable``)."""
        ...

    def close(self) -> None: ...


def _sqlite_file(url: str) -> Path | None:
    if url.startswith("sqlite") and "///" in url:
        return Path(url.split("///", 1)[1]).resolve()
    return None


def open_store(config: CollectorConfig) -> SampleStore:
    """The raw-sample backend the configuration names."""
    if config.tsdb.backend == "influxdb":
        from weibao.collector.storage.influx import InfluxSampleStore

        assert config.tsdb.influxdb is not None  # the config model refuses influxdb without its section
        return InfluxSampleStore(config.tsdb.influxdb)
    from weibao.collector.storage.sqlite import SqliteSampleStore

    state_file = _sqlite_file(config.resolved_state_url())
    path = (config.tsdb.path or state_file or config.data_dir / "samples.db").resolve()
    return SqliteSampleStore(path, shared=path == state_file)
