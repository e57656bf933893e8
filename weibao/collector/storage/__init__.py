"""Raw time-series backends behind one small Protocol; one module per backend (sqlite, influx).

    StorageError            a backend could not take a write
    └── StorageUnavailable  the backend is away or failing (the agent should retry the batch later)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

# (device, metric, canonical labels JSON)
SeriesKey = tuple[str, str, str]


class StorageError(Exception):
    """A raw-sample backend refused or failed a write."""


class StorageUnavailable(StorageError):
    """The backend is unreachable or answered a server error: retrying later can help."""


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

    def close(self) -> None: ...
