"""The engine feed: how batches ingested by any replica reach the one contract engine, in commit order.

Every replica, in the very transaction that records a batch id, adds one ``engine_feed`` row with what the
engine needs of the batch (its fault samples, the samples the extras watch, its events). The row is the last
statement of the transaction and is preceded by ``pg_advisory_xact_lock(FEED_LOCK)``: the lock is held until
the commit has become visible, so the row's id (taken from the sequence after the lock) is larger than the
id of every feed row committed before it, and no row with a smaller id can become visible later. The leader
can therefore read "rows after id N" and never skip one (sequence ids alone are not handed out in commit
order). A rolled-back transaction leaves a hole in the ids, which the reader never waits for.

Signals (``kind`` other than ``batch``) ride the same feed: a maintenance window added through any replica
reaches the leader's engine (``maintenance``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, text

from weibao.collector.engine.replay import FAULT_METRICS
from weibao.collector.state.models import FeedRow
from weibao.collector.validate import parse
from weibao.core.timeutil import now_ms, to_ms
from weibao.core.wire import IngestBatch, batch_body, parse_batch_fast

# the key of the transaction lock that orders the feed (weibao's advisory lock keys: 0x57420000 + n)
FEED_LOCK = 0x57420001
BATCH = "batch"
MAINTENANCE = "maintenance"


def _ts(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class FeedWriter:
    """Adds the feed rows of committed batches, inside the ingest transaction (``Ingestor.feed``)."""

    def __init__(self, extra_metrics: Iterable[str]) -> None:
        self.metrics = frozenset({*FAULT_METRICS, *extra_metrics})

    def row(self, batch: IngestBatch) -> dict[str, Any]:
        keep = self.metrics
        samples = [{"device": s["device"], "metric": s["metric"], "value": s["value"], "ts": _ts(s["ts"]),
                    "labels": s.get("labels") or {}} for s in batch.samples if s["metric"] in keep]
        events = [{"device": e["device"], "kind": str(e["kind"]), "ts": _ts(e["ts"]), "data": e.get("data") or {}}
                  for e in batch.events]
        times = [to_ms(s["ts"]) for s in batch.samples if s["metric"] in FAULT_METRICS]
        body = batch_body(batch.batch_id, batch.agent, samples, events).decode()
        return {"kind": BATCH, "batch_id": str(batch.batch_id), "agent": batch.agent, "created_ms": now_ms(),
                "ts_min_ms": min(times, default=None), "ts_max_ms": max(times, default=None), "body": body}

    def __call__(self, conn: Connection, batches: Sequence[IngestBatch]) -> None:
        """Last statements of an ingest transaction: the ordering lock, then one row per batch."""
        if not batches:
            return
        rows = [self.row(b) for b in batches]
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": FEED_LOCK})
        conn.execute(insert(FeedRow), rows)


def signal(engine: Engine, kind: str) -> None:
    """Put a signal for the leader's engine on the feed (its own transaction, same ordering lock)."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": FEED_LOCK})
        conn.execute(insert(FeedRow).values(kind=kind, created_ms=now_ms(), body="{}"))


@dataclass(frozen=True, slots=True)
class FeedItem:
    id: int
    kind: str
    batch: IngestBatch | None


def decode(body: str) -> IngestBatch:
    raw = body.encode()
    fast = parse_batch_fast(raw)
    return fast[0] if fast is not None else parse(raw, IngestBatch)


def read(engine: Engine, after: int, limit: int) -> list[FeedItem]:
    """Feed rows with an id above ``after``, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(FeedRow.id, FeedRow.kind, FeedRow.body).where(FeedRow.id > after)
                            .order_by(FeedRow.id).limit(limit)).all()
    return [FeedItem(int(r.id), r.kind, decode(r.body) if r.kind == BATCH else None) for r in rows]


def newest(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM engine_feed")).scalar_one())


def prune(engine: Engine, upto: int, older_than_ms: int) -> int:
    """Delete the rows the engine has worked through (``upto``) and that are older than ``older_than_ms``."""
    with engine.begin() as conn:
        res = conn.execute(delete(FeedRow).where(FeedRow.id <= upto, FeedRow.created_ms < older_than_ms))
        return int(res.rowcount or 0)
