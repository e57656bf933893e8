"""Two uvicorn worker processes over one SQLite store: every batch applied once, metrics added up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.collector.conftest import AGENT, CST, HISTORY_DAYS, batch, counts, dump, registration, sample
from tests.peers.collector import CollectorPeer, run_collector

T0 = datetime(2026, 11, 25, 11, 0, 0, tzinfo=CST)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPeer]:
    with run_collector(Path(tmp_path_factory.mktemp("workers")), {"workers": 2, **HISTORY_DAYS}) as peer:
        yield peer


def test_concurrent_batches_and_their_duplicates_apply_once(two_workers: CollectorPeer) -> None:
    tok = two_workers.token(AGENT)
    with two_workers.client(tok) as c:
        assert c.put("/api/v1/inventory", json=registration()).status_code == 200
    docs = [batch([sample("core-sw-1", "if.in_bps", float(i * 100 + j), T0 + timedelta(seconds=i * 100 + j),
                          ifName=f"Gi0/{j % 4}") for j in range(50)]) for i in range(12)]
    answers: list[tuple[int, bool]] = []
    lock = threading.Lock()

    def send(part: list[dict[str, object]]) -> None:
        with two_workers.client(tok) as c:
            for doc in part:
                r = c.post("/api/v1/ingest", content=dump(doc))
                with lock:
                    answers.append((r.status_code, bool(r.json().get("duplicate"))))

    # every batch twice, from different connections at once
    threads = [threading.Thread(target=send, args=(docs,)), threading.Thread(target=send, args=(docs[::-1],))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [s for s, _ in answers] == [200] * 24
    assert sum(1 for _, dup in answers if dup) == 12
    stored = counts(two_workers)
    assert stored["batches"] == 12
    assert stored["ts_samples"] == 12 * 50

    r = httpx.get(f"{two_workers.url}/api/v1/series", headers={"Authorization": f"Bearer {tok}"},
                  params={"device": "core-sw-1", "metric": "if.in_bps", "step": 3600,
                          "from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat()})
    assert sum(p["count"] for s in r.json()["series"] for p in s["points"]) == 12 * 50

    text = httpx.get(f"{two_workers.url}/metrics").text
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if line and not line.startswith("#")}
    assert values["weibao_ingest_batches_total"] == 12
    assert values["weibao_ingest_duplicates_total"] == 12
    assert values["weibao_ingest_samples_total"] == 12 * 50
