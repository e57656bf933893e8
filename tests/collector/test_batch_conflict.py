"""A known batch id with a different body is refused (issue item 10), against the real collector.

A resend is byte-identical (the agent encodes the same spool rows again), so it stays ``200
{"duplicate": true}``; another body under a known id is a bug or an attack: 409 with the reason, logged
and counted in /metrics, and nothing of it is stored. Also when both arrive at once and are committed in
one group.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.collector.conftest import AGENT, counts, registration
from tests.peers.collector import CollectorPeer, run_collector

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPeer]:
    with run_collector(tmp_path_factory.mktemp("conflict")) as p:
        yield p


@pytest.fixture(scope="module")
def token(peer: CollectorPeer) -> str:
    tok = peer.token(AGENT)
    with peer.client(tok) as c:
        assert c.put("/api/v1/inventory", json=registration()).status_code == 200
    return tok


T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


def body(batch_id: str, value: float, n: int = 3, device: str = "core-sw-1") -> bytes:
    t0 = T0  # the same for every body: a resend must be byte-identical
    samples = [{"device": device, "metric": "icmp.rtt_ms", "value": value + i,
                "ts": (t0 + timedelta(seconds=i)).isoformat(), "labels": {}} for i in range(n)]
    return json.dumps({"batch_id": batch_id, "agent": AGENT, "samples": samples, "events": []}).encode()


def refused(peer: CollectorPeer, reason: str) -> int:
    text = httpx.get(f"{peer.url}/metrics", timeout=10).text
    line = f'weibao_ingest_refused_total{{reason="{reason}"}} '
    return next((int(x.split()[-1]) for x in text.splitlines() if x.startswith(line)), 0)


def test_same_id_other_body_is_409_and_the_identical_resend_stays_200(peer: CollectorPeer, token: str) -> None:
    bid = str(uuid.uuid4())
    first = body(bid, 1.0, device="ups-1")
    with peer.client(token) as c:
        r = c.post("/api/v1/ingest", content=first)
        assert r.status_code == 200 and r.json()["duplicate"] is False
        stored = counts(peer)
        again = c.post("/api/v1/ingest", content=first)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        other = c.post("/api/v1/ingest", content=body(bid, 50.0, device="ups-1"))
        assert other.status_code == 409, other.text
        assert other.json()["reason"] == "batch_conflict"
        assert "different contents" in other.json()["error"]
        assert counts(peer) == stored
    assert refused(peer, "batch_conflict") == 1
    assert f"reused batch id {bid}" in peer.log()


def test_twins_arriving_together_one_stored_the_other_refused(peer: CollectorPeer, token: str) -> None:
    """Eight senders at once, four bodies under each of two ids: per id one body is stored and answered
    200 (its identical copies "duplicate"), every other body 409; none is half-stored."""
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    bodies = [body(ids[i % 2], float(i // 2 % 2) * 100, n=200, device=("core-sw-1", "acc-sw-1")[i % 2])
              for i in range(8)]
    answers: list[tuple[bytes, int, bool | None]] = []
    lock = threading.Lock()
    go = threading.Barrier(len(bodies))
    before = counts(peer)

    def send(b: bytes) -> None:
        with peer.client(token) as c:
            go.wait()
            r = c.post("/api/v1/ingest", content=b)
        with lock:
            answers.append((b, r.status_code, r.json().get("duplicate") if r.status_code == 200 else None))

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for bid in ids:
        mine = [(b, status, dup) for b, status, dup in answers if bid.encode() in b]
        winners = {b for b, status, _ in mine if status == 200}
        assert len(winners) == 1, [(s, d) for _, s, d in mine]  # one body of the id, sent twice
        assert sorted(status for _, status, _ in mine) == [200, 200, 409, 409]
        assert sorted(bool(dup) for _, status, dup in mine if status == 200) == [False, True]
    after = counts(peer)
    assert after["batches"] - before["batches"] == 2
    assert after["ts_samples"] - before["ts_samples"] == 400
