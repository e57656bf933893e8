"""Group commit: batches that wait while another is written share one transaction, and lose nothing.

The test holds the collector's own write lock (an flock on DATA/run/write.lock) while requests pile up,
so the collector must commit them together once it is released; then every sample, event and rollup is
checked against what was sent, a twin request (the same batch twice at once) answers as a duplicate,
and /metrics shows fewer commits than batches.
"""

from __future__ import annotations

import fcntl
import os
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.collector.conftest import AGENT, CST, HISTORY_DAYS, batch, counts, dump, registration, sample
from tests.peers.collector import CollectorPeer, run_collector

T0 = datetime(2026, 11, 26, 9, 0, 0, tzinfo=CST)


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPeer]:
    with run_collector(Path(tmp_path_factory.mktemp("group")), HISTORY_DAYS) as p:
        yield p


def _metrics(peer: CollectorPeer) -> dict[str, float]:
    text = httpx.get(f"{peer.url}/metrics").text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def test_waiting_batches_commit_together_exactly_once(peer: CollectorPeer) -> None:
    tok = peer.token(AGENT)
    with peer.client(tok) as c:
        assert c.put("/api/v1/inventory", json=registration()).status_code == 200
    docs: list[dict[str, Any]] = []
    sent: dict[str, list[tuple[datetime, float]]] = {}
    for i in range(9):
        samples = []
        for j in range(40):
            t = T0 + timedelta(seconds=7 * i + j * 0.1)  # all nine batches in one 5-minute bucket
            value = float((i * 37 + j * 11) % 97) - 20.0
            port = f"Gi0/{j % 5}" if i % 3 else f"Gi{i}/{j % 5}"  # every third batch brings new series
            samples.append(sample("core-sw-1", "if.in_bps", value, t, ifName=port))
            sent.setdefault(port, []).append((t, value))
        events = [{"device": "ups-1", "kind": "trap", "ts": (T0 + timedelta(seconds=i)).isoformat(),
                   "data": {"trap": "upsTrapOnBattery", "n": i}}] if i % 2 else []
        docs.append(batch(samples, events))
    requests = [*docs, docs[4]]  # the fifth batch twice, at the same time
    before = _metrics(peer)

    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def send(doc: dict[str, Any]) -> None:
        with peer.client(tok) as c:
            r = c.post("/api/v1/ingest", content=dump(doc), timeout=60)
        with lock:
            answers.append((r.status_code, r.json()))

    fd = os.open(peer.data_dir / "run" / "write.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the collector's writers now wait, as behind a long commit
        threads = [threading.Thread(target=send, args=(d,)) for d in requests]
        for th in threads:
            th.start()
        time.sleep(2.0)  # every request is parsed and queued behind the lock
        with lock:
            assert answers == []  # nothing is answered before it is committed
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    for th in threads:
        th.join(timeout=60)

    assert [s for s, _ in answers] == [200] * len(requests)
    assert sum(1 for _, a in answers if a["duplicate"]) == 1
    after = _metrics(peer)
    batches = after["weibao_ingest_batches_total"] - before["weibao_ingest_batches_total"]
    commits = after["weibao_ingest_commits_total"] - before["weibao_ingest_commits_total"]
    assert batches == 9
    assert 1 <= commits <= 3  # the first alone (it took the queue before the lock), the rest together
    stored = counts(peer)
    assert stored["batches"] == 9
    assert stored["ts_samples"] == 9 * 40
    assert stored["events"] == 4

    with peer.client(tok) as c:
        for port, points in sorted(sent.items()):
            r = c.get("/api/v1/series", params={"device": "core-sw-1", "metric": "if.in_bps", "step": 300,
                                                "label": f"ifName={port}", "from": T0.isoformat(),
                                                "to": (T0 + timedelta(minutes=5)).isoformat()})
            assert r.status_code == 200, r.text
            (series,) = r.json()["series"]
            (got,) = series["points"]
            values = [v for _, v in points]
            assert got["count"] == len(points), port
            assert (got["min"], got["max"], got["last"]) == (min(values), max(values), max(points)[1]), port
            assert got["avg"] == pytest.approx(statistics.fmean(values)), port
