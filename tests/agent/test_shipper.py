"""The shipper against a small scriptable HTTP receiver: backoff, retries, dead letters, crash re-send.

The receiver here stands in for the collector only at this unit level (what it answers is scripted);
the daemon tests ship to the real collector.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from weibao.agent.inventory.model import Device, Inventory
from weibao.agent.shipper import HttpSink, Outcome, SendResult, Shipper, ShipperConfig, backoff_delay
from weibao.agent.spool import SPOOL_FILE, Spool
from weibao.core.inventory import Category, Kind
from weibao.core.model import Sample

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
TOKEN = "test-token-5b1c"


class Receiver:
    """An HTTP server in a thread that records what it is sent and answers as scripted."""

    def __init__(self, port: int = 0) -> None:
        self.ingests: list[dict[str, Any]] = []
        self.inventories: list[dict[str, Any]] = []
        self.order: list[str] = []
        self.auth: list[str | None] = []
        self.statuses: list[tuple[int, dict[str, Any]]] = []  # consumed one per ingest; then 200
        self.hold = threading.Event()   # set: requests wait for ``release``
        self.release = threading.Event()
        self.got_request = threading.Event()
        self.clock_skew_s = 0.0  # how far this "collector's" clock is off (its answers' Date header)
        self.dates: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def date_time_string(self, timestamp: float | None = None) -> str:
                return super().date_time_string(time.time() + receiver.clock_skew_s)

            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _read(self) -> dict[str, Any]:
                n = int(self.headers.get("Content-Length", "0"))
                doc: dict[str, Any] = json.loads(self.rfile.read(n))
                receiver.auth.append(self.headers.get("Authorization"))
                receiver.dates.append(self.headers.get("Date"))
                return doc

            def do_PUT(self) -> None:
                receiver.inventories.append(self._read())
                receiver.order.append("inventory")
                self._answer(200, {"devices": len(receiver.inventories[-1]["devices"])})

            def do_POST(self) -> None:
                doc = self._read()
                receiver.ingests.append(doc)
                receiver.order.append("ingest")
                receiver.got_request.set()
                if receiver.hold.is_set():
                    receiver.release.wait(30)
                    return  # the client was killed: no answer
                if receiver.statuses:
                    status, answer = receiver.statuses.pop(0)
                    self._answer(status, answer)
                    return
                seen = sum(1 for d in receiver.ingests if d["batch_id"] == doc["batch_id"]) > 1
                self._answer(200, {"duplicate": True} if seen else {"accepted": len(doc["samples"])})

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def values_once(self) -> list[float]:
        """Sample values of every distinct batch (a repeated batch_id counts once, like the collector)."""
        seen: dict[str, list[float]] = {}
        for d in self.ingests:
            seen.setdefault(d["batch_id"], [s["value"] for s in d["samples"]])
        return sorted(v for vs in seen.values() for v in vs)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def inventory() -> Inventory:
    dev = Device(name="sw-1", address="127.0.0.1", kind=Kind.SWITCH, category=Category.BUSINESS)
    return Inventory(site="test-site", source="test", devices={"sw-1": dev})


def fill(spool: Spool, n: int) -> None:
    spool.append([Sample("sw-1", "icmp.rtt_ms", float(i), T0 + timedelta(seconds=i)) for i in range(n)])


def make_shipper(spool: Spool, url: str, **kw: Any) -> Shipper:
    cfg = ShipperConfig(url=url, agent="test-agent", batch_items=kw.pop("batch_items", 100),
                        backoff_initial_s=0.05, backoff_max_s=0.4, idle_s=0.05, request_timeout_s=5, **kw)
    shipper = Shipper(spool, cfg, TOKEN)
    shipper.set_inventory(inventory())
    return shipper


async def until_empty(spool: Spool, limit_s: float) -> None:
    end = time.monotonic() + limit_s
    while spool.depth() and time.monotonic() < end:  # noqa: ASYNC110 - the spool has no notification to await
        await asyncio.sleep(0.05)


async def ship_until_empty(shipper: Shipper, spool: Spool, limit_s: float = 20) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(shipper.run(stop))
    await until_empty(spool, limit_s)
    stop.set()
    await task
    await shipper.aclose()


def test_backoff_is_bounded_and_grows() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(a, 1.0, 30.0, rng) for a in range(12)]
    assert all(0.5 <= d <= 30.0 for d in delays)
    assert max(backoff_delay(a, 1.0, 30.0, rng) for a in range(8, 12) for _ in range(20)) > 8
    assert max(backoff_delay(0, 1.0, 30.0, rng) for _ in range(50)) <= 1.0


def test_collector_down_then_up_ships_the_backlog_once_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_FILE)
    fill(spool, 350)
    port = spare_port()
    shipper = make_shipper(spool, f"http://127.0.0.1:{port}")
    box: dict[str, Receiver] = {}

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(shipper.run(stop))
        await asyncio.sleep(1.5)  # nobody listens: connection refused, backoff
        assert spool.depth() == 350
        assert shipper.last.outcome == "retry" and "ConnectError" in shipper.last.detail
        box["r"] = Receiver(port)
        await until_empty(spool, 15)
        stop.set()
        await task
        await shipper.aclose()

    asyncio.run(scenario())
    r = box["r"]
    try:
        assert spool.depth() == 0
        assert r.order[0] == "inventory"
        assert r.inventories[0]["devices"][0]["name"] == "sw-1"
        assert r.values_once() == [float(i) for i in range(350)]
        assert len(r.ingests) == len({d["batch_id"] for d in r.ingests}) == 4  # 100 per batch
        assert [d["samples"][0]["value"] for d in r.ingests] == [0.0, 100.0, 200.0, 300.0]
        assert set(r.auth) == {f"Bearer {TOKEN}"}
    finally:
        r.stop()
        spool.close()


class TimedSink:
    """The HTTP sink, noting when each call was made (to see the shipper's delays between attempts)."""

    def __init__(self, url: str) -> None:
        self.inner = HttpSink(url, TOKEN, timeout_s=5)
        self.calls: list[float] = []
        self.results: list[SendResult] = []

    async def send(self, batch_id: str, body: bytes) -> SendResult:
        self.calls.append(time.monotonic())
        self.results.append(await self.inner.send(batch_id, body))
        return self.results[-1]

    async def register(self, body: bytes) -> SendResult:
        self.calls.append(time.monotonic())
        self.results.append(await self.inner.register(body))
        return self.results[-1]

    async def aclose(self) -> None:
        await self.inner.aclose()


def _attempt_gaps(url: str, spool: Spool, seconds: float) -> tuple[list[float], TimedSink]:
    sink = TimedSink(url)
    cfg = ShipperConfig(url=url, agent="test-agent", batch_items=100, backoff_initial_s=0.05, backoff_max_s=2.0,
                        reconnect_max_s=0.2, idle_s=0.05, request_timeout_s=5)
    shipper = Shipper(spool, cfg, TOKEN, sink=sink)
    shipper.set_inventory(inventory())

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(shipper.run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await task
        await shipper.aclose()

    asyncio.run(scenario())
    return [b - a for a, b in zip(sink.calls, sink.calls[1:], strict=False)], sink


def test_refused_connection_is_retried_within_seconds_but_5xx_backs_off(tmp_path: Path,
                                                                         receiver: Receiver) -> None:
    spool = Spool(tmp_path / SPOOL_FILE)
    fill(spool, 10)
    refused_gaps, sink = _attempt_gaps(f"http://127.0.0.1:{spare_port()}", spool, 3.0)
    assert sink.results and all(r.status is None and r.refused for r in sink.results)
    assert len(refused_gaps) >= 8
    assert max(refused_gaps) < 0.2 + 0.15  # capped by reconnect_max_s, not backoff_max_s
    receiver.statuses = [(503, {"detail": "busy"})] * 100
    busy_gaps, sink = _attempt_gaps(receiver.url, spool, 4.0)
    assert sink.results and all(r.status in (200, 503) and not r.refused for r in sink.results)
    assert max(busy_gaps) > 0.4  # a collector that answers "busy" gets the full backoff
    assert spool.depth() == 10
    spool.close()


def test_5xx_is_retried_with_the_same_batch(tmp_path: Path, receiver: Receiver) -> None:
    spool = Spool(tmp_path / SPOOL_FILE)
    fill(spool, 30)
    receiver.statuses = [(503, {"detail": "busy"}), (500, {"detail": "oops"})]
    asyncio.run(ship_until_empty(make_shipper(spool, receiver.url), spool))
    assert len(receiver.ingests) == 3
    assert len({d["batch_id"] for d in receiver.ingests}) == 1
    assert receiver.ingests[0] == receiver.ingests[2]
    assert spool.stats().dead == []
    spool.close()


def test_4xx_moves_the_batch_to_dead_letters_and_status_shows_it(tmp_path: Path, receiver: Receiver) -> None:
    spool = Spool(tmp_path / SPOOL_FILE)
    fill(spool, 150)
    receiver.statuses = [(422, {"detail": "samples of unknown device 'sw-1'"})]
    asyncio.run(ship_until_empty(make_shipper(spool, receiver.url), spool))
    dead_id = receiver.ingests[0]["batch_id"]
    assert receiver.values_once() == [float(i) for i in range(150)]  # the refused one was sent too
    stats = spool.stats()
    assert [(d.batch_id, d.status, d.samples) for d in stats.dead] == [(dead_id, 422, 100)]
    spool.close()
    out = subprocess.run([sys.executable, "-m", "weibao", "agent", "status", "--data", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "dead letters: 1 batches" in out.stdout
    assert dead_id in out.stdout and "status 422" in out.stdout and "unknown device 'sw-1'" in out.stdout
    doc = json.loads(subprocess.run(
        [sys.executable, "-m", "weibao", "agent", "status", "--data", str(tmp_path), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=30, check=True).stdout)
    assert doc["dead_letters"][0]["reason"] == json.dumps("samples of unknown device 'sw-1'")
    assert doc["spool"]["rows"] == 0


def test_401_keeps_the_batch(tmp_path: Path, receiver: Receiver) -> None:
    spool = Spool(tmp_path / SPOOL_FILE)
    fill(spool, 10)
    receiver.statuses = [(401, {"detail": "bad token"})] * 3
    shipper = make_shipper(spool, receiver.url)

    async def scenario() -> list[Outcome | None]:
        outcomes = [await shipper.ship_one() for _ in range(3)]
        await shipper.aclose()
        return outcomes

    assert asyncio.run(scenario()) == [Outcome.RETRY] * 3
    assert spool.depth() == 10 and spool.stats().dead == []
    assert shipper.last.status == 401
    assert TOKEN not in json.dumps(spool.stats().meta)
    spool.close()


def test_killed_during_a_shipment_resends_the_same_batch(tmp_path: Path, receiver: Receiver) -> None:
    """SIGKILL while the collector holds the request: after restart the same batch_id, same rows."""
    receiver.hold.set()
    child = subprocess.Popen([sys.executable, "-c", f"""
import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from weibao.core.model import Sample
from weibao.agent.inventory.model import Device, Inventory
from weibao.core.inventory import Category, Kind
from weibao.agent.shipper import Shipper, ShipperConfig
from weibao.agent.spool import Spool
spool = Spool(Path({str(tmp_path / SPOOL_FILE)!r}))
t0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
spool.append([Sample("sw-1", "icmp.rtt_ms", float(i), t0 + timedelta(seconds=i)) for i in range(250)])
shipper = Shipper(spool, ShipperConfig(url={receiver.url!r}, agent="test-agent", batch_items=100), "t")
asyncio.run(shipper.ship_one())
"""], cwd=ROOT)
    try:
        assert receiver.got_request.wait(20), "the child never shipped"
    finally:
        child.kill()
        child.wait()
    first = receiver.ingests[0]
    receiver.hold.clear()
    receiver.release.set()
    spool = Spool(tmp_path / SPOOL_FILE)
    assert spool.depth() == 250  # nothing acknowledged, nothing lost
    asyncio.run(ship_until_empty(make_shipper(spool, receiver.url), spool))
    resent = [d for d in receiver.ingests[1:] if d["batch_id"] == first["batch_id"]]
    assert resent and resent[0]["samples"] == first["samples"]
    assert receiver.values_once() == [float(i) for i in range(250)]
    assert spool.depth() == 0
    spool.close()


def test_a_collector_clock_far_from_ours_is_warned_about_and_shown(tmp_path: Path, receiver: Receiver,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    import email.utils

    from weibao.agent.daemon import render_metrics

    spool = Spool(tmp_path / SPOOL_FILE)
    fill(spool, 250)
    receiver.clock_skew_s = -3600.0  # the collector's clock an hour behind: ours is an hour ahead of it
    with caplog.at_level("WARNING", logger="weibao.agent.shipper"):
        shipper = make_shipper(spool, receiver.url)
        asyncio.run(ship_until_empty(shipper, spool))
    assert shipper.clock_offset_s is not None and abs(shipper.clock_offset_s - 3600) <= 2
    warned = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert len(warned) == 1 and "ahead of the collector's" in warned[0]  # once, not per batch
    last = spool.stats().meta["last_ship"]
    assert abs(last["clock_offset_s"] - 3600) <= 2
    metrics = render_metrics(spool.stats(), {})
    (line,) = [x for x in metrics.splitlines() if x.startswith("weibao_agent_clock_offset_seconds")]
    assert abs(float(line.split()[1]) - 3600) <= 2
    # every request told the collector our time
    assert receiver.dates and all(d is not None for d in receiver.dates)
    sent = [email.utils.parsedate_to_datetime(d).timestamp() for d in receiver.dates if d]
    assert all(abs(t - time.time()) < 30 for t in sent)
    spool.close()


def test_clocks_that_agree_raise_no_warning(tmp_path: Path, receiver: Receiver,
                                            caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / SPOOL_FILE)
    fill(spool, 20)
    with caplog.at_level("WARNING", logger="weibao.agent.shipper"):
        shipper = make_shipper(spool, receiver.url)
        asyncio.run(ship_until_empty(shipper, spool))
    assert shipper.clock_offset_s is not None and abs(shipper.clock_offset_s) <= 2
    assert not [r for r in caplog.records if "clock" in r.getMessage()]
    spool.close()
