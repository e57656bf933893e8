"""Registering 7 devices, then 100,000, then the same 7 again (issue item 11), against the real collector.

The sweep used to fail with ``KeyError`` (engine/service.py): the rebuild after a registration replayed
the stored samples of devices the new registration had retired. Now each rebuild takes the devices it
is given, no sweep fails, and a fault of one of the 7 still opens its ticket.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.peers.collector import run_collector

pytestmark = pytest.mark.timeout(300)

AGENT = "site-r"
SEVEN = tuple(f"r-sw-{i}" for i in range(7))


def registration(names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {"site": "lab", "agent": AGENT, "devices": [
        {"name": n, "address": "127.0.0.1", "kind": "switch", "category": "business"} for n in names]}


def until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_seven_then_100000_then_seven_again(tmp_path: Path) -> None:
    with run_collector(tmp_path, {"contract": {"sweep_interval_s": 0.5}}) as peer, \
            peer.client(peer.token(AGENT)) as agent, peer.client(peer.token("eng-r", "engineer")) as eng:

        def devices() -> int:
            return int(eng.get("/api/v1/contract").json()["devices"])

        now = datetime.now(UTC).replace(microsecond=0)
        assert agent.put("/api/v1/inventory", json=registration(SEVEN)).status_code == 200
        samples = [{"device": d, "metric": "up", "value": 1.0, "ts": (now - timedelta(minutes=m)).isoformat()}
                   for d in SEVEN for m in (3, 2, 1)]
        r = agent.post("/api/v1/ingest", json={"batch_id": str(uuid.uuid4()), "agent": AGENT, "samples": samples})
        assert r.status_code == 200, r.text
        until("7 devices in the engine", lambda: devices() == 7)
        big = [f"r-x-{i:06d}" for i in range(100_000)]
        r = agent.put("/api/v1/inventory", json=registration(big), timeout=120)
        assert r.status_code == 200 and r.json() == {"registered": 100_000, "retired": 7}
        until("100,000 devices in the engine", lambda: devices() == 100_000, timeout=120)
        r = agent.put("/api/v1/inventory", json=registration(SEVEN), timeout=120)
        assert r.status_code == 200 and r.json() == {"registered": 7, "retired": 100_000}
        until("7 devices again", lambda: devices() == 7, timeout=120)
        time.sleep(2)  # a few sweeps over the new set
        down = {"device": SEVEN[0], "metric": "up", "value": 0.0, "ts": datetime.now(UTC).isoformat()}
        r = agent.post("/api/v1/ingest", json={"batch_id": str(uuid.uuid4()), "agent": AGENT, "samples": [down]})
        assert r.status_code == 200, r.text

        def opened() -> bool:
            found = eng.get("/api/v1/tickets", params={"device": SEVEN[0]}).json()["tickets"]
            return [(t["rule"], t["state"]) for t in found] == [("down", "open")]

        until("the ticket of the fault", opened, timeout=20)
        log = peer.log()
    assert "contract engine: failed" not in log, log[-3000:]
    assert "KeyError" not in log


def test_a_dependency_circle_kept_from_before_holds_nothing() -> None:
    # refused at registration now; one kept from before must not hold its devices' samples for each other
    from datetime import UTC, datetime, timedelta

    from weibao.collector.engine.gate import DependencyGate
    from weibao.core.model import Sample

    gate = DependencyGate({"a": "b", "b": "a", "c": "c", "d": "a", "e": None}, timedelta(minutes=2),
                          begins=lambda s: True)
    assert gate.upstream == {"d": "a"}
    done: list[str] = []
    t = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    gate.push([Sample(n, "up", 0.0, t) for n in "abce"], lambda s: done.append(s.device),
              seen=lambda d: None, released=lambda up, ts, waited: False)
    assert done == ["a", "b", "c", "e"] and gate.held == 0
