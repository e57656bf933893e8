"""The durable spool: order, persistent batch assignment, bounds, refusal of bad rows, dead letters."""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from weibao.agent.spool import SPOOL_FILE, Spool, SpoolLimits, open_stats
from weibao.core.model import Event, EventKind, Sample

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def samples(n: int, start: int = 0, device: str = "sw-1") -> list[Sample]:
    return [Sample(device, "icmp.rtt_ms", float(i), T0 + timedelta(seconds=i)) for i in range(start, start + n)]


def test_rows_ship_oldest_first_in_bounded_batches(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_FILE)
    spool.append(samples(7), [Event("ups-1", EventKind.TRAP, T0, {"trap": "upsTrapOnBattery"})])
    spool.append(samples(5, start=7))
    first = spool.next_batch(max_items=6)
    assert first is not None
    assert [s["value"] for s in first.samples] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    # not acknowledged: the same batch comes back, not a new one
    again = spool.next_batch(max_items=6)
    assert again is not None and again.batch_id == first.batch_id and again.samples == first.samples
    assert spool.ack(first.batch_id) == 6
    second = spool.next_batch(max_items=100)
    assert second is not None and second.batch_id != first.batch_id
    assert [s["value"] for s in second.samples] == [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    assert second.events[0]["data"] == {"trap": "upsTrapOnBattery"}
    assert second.samples[0]["ts"] == (T0 + timedelta(seconds=6)).isoformat()
    spool.ack(second.batch_id)
    assert spool.next_batch() is None
    assert spool.depth() == 0
    stats = spool.stats()
    assert stats.counters["shipped_rows"] == 13 and stats.counters["shipped_batches"] == 2
    spool.close()


def test_batch_assignment_survives_a_killed_process(tmp_path: Path) -> None:
    """A child assigns a batch and is SIGKILLed before acknowledging: the same id and rows come back."""
    path = tmp_path / SPOOL_FILE
    child = subprocess.Popen(
        [sys.executable, "-c", f"""
import sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from weibao.core.model import Sample
from weibao.agent.spool import Spool
spool = Spool(Path({str(path)!r}))
t0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
spool.append([Sample("sw-1", "icmp.rtt_ms", float(i), t0 + timedelta(seconds=i)) for i in range(300)])
batch = spool.next_batch(max_items=100)
print(batch.batch_id, flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert child.stdout is not None
        batch_id = child.stdout.readline().strip()
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -9
    spool = Spool(path)
    assert spool.depth() == 300
    batch = spool.next_batch(max_items=100)
    assert batch is not None and batch.batch_id == batch_id
    assert [s["value"] for s in batch.samples] == [float(i) for i in range(100)]
    spool.close()


def test_full_spool_drops_the_oldest_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / SPOOL_FILE, SpoolLimits(max_rows=100))
    with caplog.at_level(logging.WARNING, logger="weibao.agent.spool"):
        for round_ in range(5):
            spool.append(samples(50, start=round_ * 50))
    assert spool.depth() == 100
    stats = spool.stats()
    assert stats.counters["dropped_full"] == 150
    # the first two rounds fit; each later one pushes out 50 rows, and says so with the count
    drops = [r for r in caplog.records if r.name == "weibao.agent.spool" and "spool full" in r.getMessage()]
    assert [r.levelno for r in drops] == [logging.WARNING] * 3
    counts = [re.search(r"dropped the (\d+) oldest rows", r.getMessage()) for r in drops]
    assert [int(m.group(1)) if m else None for m in counts] == [50, 50, 50]
    batch = spool.next_batch(max_items=1000)
    assert batch is not None
    assert [s["value"] for s in batch.samples] == [float(i) for i in range(150, 250)]
    spool.close()
    # what the file holds, read independently of the Spool class
    db = sqlite3.connect(tmp_path / SPOOL_FILE)
    assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 100
    db.close()


def test_byte_bound_drops_the_oldest(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_FILE, SpoolLimits(max_bytes=20_000))
    spool.append(samples(1000))
    db = sqlite3.connect(tmp_path / SPOOL_FILE)
    held = db.execute("SELECT coalesce(sum(length(payload)), 0), min(id), max(id) FROM items").fetchone()
    db.close()
    assert held[0] <= 20_000
    assert held[2] - held[1] + 1 == spool.depth()  # a contiguous newest range survived
    assert spool.stats().counters["dropped_full"] == 1000 - spool.depth()
    spool.close()


def test_rows_the_collector_would_refuse_are_refused_here(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_FILE)
    bad = [Sample("sw-1", "icmp.rtt_ms", math.nan, T0),
           Sample("sw-1", "icmp.rtt_ms", 1.0, datetime(2026, 11, 25, 8, 0)),  # naive
           Sample("sw-1", "Bad Metric", 1.0, T0)]
    assert spool.append(bad + samples(2)) == 2
    assert spool.stats().counters["refused_invalid"] == 3
    spool.close()


def test_dead_letter_keeps_the_batch_and_the_reason(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_FILE)
    spool.append(samples(3))
    batch = spool.next_batch()
    assert batch is not None
    spool.dead_letter(batch, 422, "unknown device: sw-1")
    assert spool.depth() == 0 and spool.next_batch() is None
    spool.close()
    stats = open_stats(tmp_path / SPOOL_FILE)
    assert [(d.batch_id, d.status, d.reason, d.samples) for d in stats.dead] == [
        (batch.batch_id, 422, "unknown device: sw-1", 3)]
    db = sqlite3.connect(tmp_path / SPOOL_FILE)
    body = json.loads(db.execute("SELECT body FROM dead").fetchone()[0])
    db.close()
    assert [s["value"] for s in body["samples"]] == [0.0, 1.0, 2.0]


def test_spool_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "d" / SPOOL_FILE)
    spool.append(samples(1))
    assert (tmp_path / "d" / SPOOL_FILE).stat().st_mode & 0o077 == 0
    db = sqlite3.connect(tmp_path / "d" / SPOOL_FILE)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    spool.close()


@pytest.mark.parametrize("limits", [SpoolLimits(max_rows=10)])
def test_dropping_rows_of_an_assigned_batch_leaves_no_empty_batch(tmp_path: Path, limits: SpoolLimits) -> None:
    spool = Spool(tmp_path / SPOOL_FILE, limits)
    spool.append(samples(10))
    first = spool.next_batch(max_items=5)
    assert first is not None
    spool.append(samples(10, start=10))  # pushes out all of the assigned batch and the rest
    batch = spool.next_batch(max_items=100)
    assert batch is not None and batch.batch_id != first.batch_id
    assert [s["value"] for s in batch.samples] == [float(i) for i in range(10, 20)]
    spool.close()
