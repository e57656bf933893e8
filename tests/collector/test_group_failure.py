"""A group commit that fails: one batch's failure stays that batch's, a failure of the store is everyone's.

The raw-sample store here is one of our own behind the ``SampleStore`` interface: it refuses any batch
holding the metric ``x.refused`` (as a server would refuse one value), or every batch while ``down``; the
state store is a real SQLite file. The collector's write lock is held while batches queue, so that they
are committed as one group when it is released.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import OperationalError

from tests.collector.conftest import CST
from weibao.collector.config import LimitsConfig
from weibao.collector.errors import Refused, StorageError
from weibao.collector.ingest import Ingestor
from weibao.collector.locks import FileLock
from weibao.collector.metrics import IngestMetrics
from weibao.collector.registry import Registry
from weibao.collector.state.db import create_state_engine, migrate
from weibao.collector.state.models import Batch
from weibao.collector.storage import PreparedSamples, RawPoint
from weibao.core.wire import IngestBatch, InventoryRegistration

pytestmark = pytest.mark.timeout(60)
T0 = datetime.now(CST).replace(microsecond=0) - timedelta(minutes=5)


class Picky:
    name = "picky"
    joins_state_transaction = True
    readable = False

    def __init__(self) -> None:
        self.down = False
        self.writes = 0

    def write(self, batch: PreparedSamples, state: Connection) -> Callable[[], None]:
        self.writes += 1
        if self.down:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        if any(metric == "x.refused" for _, metric, _ in batch.series):
            raise StorageError("the server refused a value of x.refused")
        return lambda: None

    def prune(self, older_than_ms: int, state: Connection) -> int:
        return 0

    def read_raw(self, metrics: Collection[str], from_ms: int, to_ms: int) -> Iterator[RawPoint]:
        return iter(())

    def close(self) -> None:
        pass


@pytest.fixture()
def site(tmp_path: Path) -> tuple[Ingestor, Picky, FileLock]:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    registry = Registry(engine)
    registry.register(InventoryRegistration.model_validate({"site": "lab", "agent": "site-a", "devices": [
        {"name": "sw-1", "address": "127.0.0.1", "kind": "switch", "category": "backbone"}]}))
    store = Picky()
    lock = FileLock(tmp_path / "write.lock")
    return Ingestor(engine, store, registry, LimitsConfig(), IngestMetrics(), lock), store, lock


def batch(metric: str) -> IngestBatch:
    return IngestBatch.model_validate({"batch_id": str(uuid.uuid4()), "agent": "site-a", "samples": [
        {"device": "sw-1", "metric": metric, "value": 1.0, "ts": T0.isoformat()}]})


def in_one_group(ingestor: Ingestor, lock: FileLock, batches: list[IngestBatch]) -> list[Any]:
    """Apply ``batches`` at once while the write lock is held: the first alone, the rest as one group."""
    answers: list[Any] = [None] * len(batches)

    def apply(i: int) -> None:
        try:
            answers[i] = ingestor.apply(batches[i])
        except Exception as exc:  # the answer under test
            answers[i] = exc

    with lock.held():
        threads = [threading.Thread(target=apply, args=(i,)) for i in range(len(batches))]
        threads[0].start()
        time.sleep(0.3)  # the first takes the committer's turn and waits for the lock
        for t in threads[1:]:
            t.start()
        deadline = time.monotonic() + 10
        while len(ingestor._queue) < len(batches) - 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    for t in threads:
        t.join(timeout=30)
    return answers


def stored(ingestor: Ingestor) -> int:
    with ingestor.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Batch)).scalar_one())


def test_one_batch_that_cannot_be_stored_fails_alone(site: tuple[Ingestor, Picky, FileLock]) -> None:
    ingestor, _, lock = site
    answers = in_one_group(ingestor, lock, [batch("up"), batch("cpu.util_pct"), batch("x.refused"),
                                            batch("mem.util_pct")])
    assert [type(a).__name__ for a in answers] == ["Outcome", "Outcome", "Refused", "Outcome"], answers
    assert isinstance(answers[2], Refused) and "x.refused" in str(answers[2])
    assert stored(ingestor) == 3


def test_a_failing_store_fails_the_group_once(site: tuple[Ingestor, Picky, FileLock]) -> None:
    ingestor, store, lock = site
    ingestor.apply(batch("up"))
    store.down, before = True, store.writes
    answers = in_one_group(ingestor, lock, [batch("up"), batch("cpu.util_pct"), batch("mem.util_pct")])
    assert all(isinstance(a, Refused) and a.status == 503 for a in answers), answers
    # the first alone, then the other two as one group (which fails at its first write): two tries in all,
    # not one more for each member alone
    assert store.writes - before == 2
    assert stored(ingestor) == 1
