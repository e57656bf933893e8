"""Three collectors on one PostgreSQL and one VictoriaMetrics: every one ingests, one runs the contract engine.

The leader is killed with SIGKILL while three agents (the product's HTTP sink, given the three URLs) ship
batches: every acknowledged batch is stored once, one of the other replicas leads within a bounded time,
replays, and the fault that begins after the kill gets exactly one ticket from it; the ticket opened before
the kill is neither lost nor opened again, and its clocks are the same. The engine feed keeps commit order.

By hand (rules/contract.yaml, category ``mis``): device ``mis-ha-1`` is down yesterday 09:20-09:30 (a level 3
ticket, restored) and again from 10:10 (a second ticket: 40 min later is past the 30 min re-open window);
``mis-ha-4`` is down 09:40-10:20, across the kill (one ticket, opened by the old leader, restored by the new
one at 10:20); ``mis-ha-2`` stays up.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.peers import postgres, victoria
from tests.peers.collector import CollectorPeer, free_port, run_collector
from weibao.agent.shipper import HttpSink, Shipper, ShipperConfig
from weibao.agent.spool import Spool
from weibao.collector.ha.feed import FeedWriter
from weibao.collector.ha.leader import LEADER_LOCK
from weibao.core.model import Sample
from weibao.core.wire import IngestBatch

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(not postgres.available(), reason=postgres.missing() or ""),
              pytest.mark.skipif(not victoria.available(), reason="victoria-metrics is not installed")]

CST = ZoneInfo("Asia/Shanghai")
STEP = timedelta(seconds=60)
AGENTS = {"site-ha-1": "mis-ha-1", "site-ha-2": "mis-ha-2", "site-ha-4": "mis-ha-4"}
PER_BATCH = 5  # samples (minutes) per batch
TAKEOVER_S = 15.0  # the bound asserted on: kill -> the other replica leads
TICKET_S = 30.0  # kill -> the ticket of the fault that began after it


def registration(agent: str, device: str | None = None) -> dict[str, Any]:
    return {"site": "lab", "agent": agent, "devices": [
        {"name": device or AGENTS[agent], "address": "127.0.0.1", "kind": "server", "category": "mis",
         "icmp": {"count": 3}, "schedule": {"icmp_s": 60}}]}


def at(day: date, hh: int, mm: int) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=CST)


def timeline(day: date, device: str, down: list[tuple[datetime, datetime]]) -> list[dict[str, Any]]:
    """One ``up`` sample a minute, 09:00-10:30, 0 inside ``down``."""
    out, t = [], at(day, 9, 0)
    while t < at(day, 10, 30):
        value = 0.0 if any(lo <= t < hi for lo, hi in down) else 1.0
        out.append({"device": device, "metric": "up", "value": value, "ts": t.isoformat(), "labels": {}})
        t += STEP
    return out


@dataclass
class Sender:
    """An agent: ships its batches in order through ``HttpSink`` (both URLs, failover), retrying a batch
    (bounded) until a collector acknowledges it."""

    agent: str
    urls: list[str]
    token: str
    batches: list[dict[str, Any]]
    pause_s: float
    hold_before: int | None = None  # batch index to wait at until ``go`` is set
    go: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)
    acked: list[str] = field(default_factory=list)
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        sink = HttpSink(",".join(self.urls), self.token, timeout_s=10.0)
        try:
            for i, b in enumerate(self.batches):
                if i == self.hold_before:
                    self.reached.set()
                    if not self.go.wait(60):
                        self.errors.append("never released")
                        return
                body = json.dumps(b).encode()
                for _attempt in range(100):  # bounded: 100 tries, 0.1 s apart
                    res = await sink.send(b["batch_id"], body)
                    if res.ok:
                        self.acked.append(b["batch_id"])
                        self.duplicates += res.duplicate
                        break
                    await asyncio.sleep(0.1)
                else:
                    self.errors.append(f"batch {i} never acknowledged: {res.status} {res.detail}")
                    return
                await asyncio.sleep(self.pause_s)
        finally:
            await sink.aclose()


def chunks(agent: str, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"batch_id": str(uuid.uuid4()), "agent": agent, "samples": samples[k:k + PER_BATCH], "events": []}
            for k in range(0, len(samples), PER_BATCH)]


def health(peer: CollectorPeer) -> dict[str, Any]:
    try:
        r = httpx.get(f"{peer.url}/healthz", timeout=2.0)
    except httpx.HTTPError:
        return {}
    out: dict[str, Any] = r.json()
    return out


def wait_for(pred: Any, timeout: float, what: str) -> float:
    """Poll ``pred`` every 0.1 s until true; the seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    for _ in range(int(timeout / 0.1) + 1):
        if pred():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def tickets(url: str, token: str, device: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/v1/tickets", params={"device": device},
                  headers={"Authorization": f"Bearer {token}"}, timeout=10.0)
    r.raise_for_status()
    found: list[dict[str, Any]] = r.json()["tickets"]
    return sorted(found, key=lambda t: t["opened_at"])


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres.Postgres]:
    with postgres.run_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[victoria.Victoria]:
    with victoria.run_victoria(tmp_path_factory.mktemp("vm")) as server:
        yield server


def replica_config(pg: postgres.Postgres, vm: victoria.Victoria, name: str) -> dict[str, Any]:
    return {"state_url": pg.url,
            "tsdb": {"backend": "influxdb", "influxdb": {"url": vm.url, "org": "weibao", "bucket": "weibao",
                                                         "token": "unused-by-vm"}},
            "contract": {"sweep_interval_s": 0.5},
            "ha": {"replica": name, "check_interval_s": 0.5, "step_down_after_s": 2.0, "feed_poll_s": 0.1}}


def test_the_survivor_takes_over_after_a_kill(tmp_path: Path, pg: postgres.Postgres, vm: victoria.Victoria) -> None:
    day = (datetime.now(CST) - timedelta(days=1)).date()
    with ExitStack() as stack:
        for name in ("a", "b", "c"):
            (tmp_path / name).mkdir()
        a = stack.enter_context(run_collector(tmp_path / "a", replica_config(pg, vm, "a")))
        wait_for(lambda: health(a).get("leader") is True, 15, "replica a leads, alone")
        b = stack.enter_context(run_collector(tmp_path / "b", replica_config(pg, vm, "b")))
        c = stack.enter_context(run_collector(tmp_path / "c", replica_config(pg, vm, "c")))
        for other in (b, c):
            assert health(other)["leader"] is False and health(other)["leader_replica"] == "a"
        urls = [a.url, b.url, c.url]
        eng = a.token("wang", "engineer")
        agent_tokens = {name: a.token(name) for name in AGENTS}
        for name, tok in agent_tokens.items():  # registered through b: the state is shared
            r = httpx.put(f"{b.url}/api/v1/inventory", json=registration(name),
                          headers={"Authorization": f"Bearer {tok}"}, timeout=10)
            assert r.status_code == 200, r.text

        # a batch sent to every replica at once is stored once
        twin = chunks("site-ha-2", timeline(day, "mis-ha-2", [])[:1])[0]
        answers: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda u=u: answers.append(httpx.post(
            f"{u}/api/v1/ingest", json=twin, headers={"Authorization": f"Bearer {agent_tokens['site-ha-2']}"},
            timeout=10))) for u in urls]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert sorted(r.json()["duplicate"] for r in answers) == [False, True, True]

        fault_1 = (at(day, 9, 20), at(day, 9, 30))
        fault_2 = (at(day, 10, 10), at(day, 11, 0))
        s1 = Sender("site-ha-1", urls, agent_tokens["site-ha-1"],
                    chunks("site-ha-1", timeline(day, "mis-ha-1", [fault_1, fault_2])), 0.05,
                    hold_before=14)  # batch 14 begins at 10:10: the second fault begins after the kill
        s2 = Sender("site-ha-2", urls, agent_tokens["site-ha-2"],
                    chunks("site-ha-2", timeline(day, "mis-ha-2", [])[1:]), 0.3)
        across = (at(day, 9, 40), at(day, 10, 20))
        s4 = Sender("site-ha-4", urls, agent_tokens["site-ha-4"],
                    chunks("site-ha-4", timeline(day, "mis-ha-4", [across])), 0.05,
                    hold_before=12)  # batch 12 begins at 10:00: the outage goes on after the kill
        senders = (s1, s2, s4)
        workers = [threading.Thread(target=s.run) for s in senders]
        for w in workers:
            w.start()
        assert s1.reached.wait(60) and s4.reached.wait(60), (s1.errors, s4.errors)
        wait_for(lambda: len(tickets(a.url, eng, "mis-ha-1")) == 1
                 and tickets(a.url, eng, "mis-ha-1")[0]["state"] == "restored"
                 and len(tickets(a.url, eng, "mis-ha-4")) == 1, 30,
                 "replica a opens and restores the first outage's ticket, and opens the one across the kill")
        before = tickets(a.url, eng, "mis-ha-1")[0]
        before_4 = tickets(a.url, eng, "mis-ha-4")[0]
        assert before_4["state"] == "open" and before_4["opened_at"] == across[0].isoformat(), before_4

        os.kill(a.proc.pid, signal.SIGKILL)  # agent 2 is still shipping
        killed = time.monotonic()
        a.proc.wait(10)
        s1.go.set()
        s4.go.set()
        takeover = wait_for(lambda: any(health(p).get("leader") is True for p in (b, c)), TAKEOVER_S,
                            "replica b or c leads after the kill")
        new_leader, other = (b, c) if health(b).get("leader") is True else (c, b)
        assert health(other)["leader"] is False
        survivor = new_leader.url
        wait_for(lambda: len(tickets(survivor, eng, "mis-ha-1")) == 2, TICKET_S, "the survivor opens the new ticket")
        ticket_s = time.monotonic() - killed
        for w in workers:
            w.join(60)
        assert not any(s.errors for s in senders), [s.errors for s in senders]
        leader_name = "b" if new_leader is b else "c"
        assert health(b)["leader_replica"] == health(c)["leader_replica"] == leader_name

        # settle: what the agents sent last is in the engine, then the tickets are final
        time.sleep(2.0)
        found = tickets(survivor, eng, "mis-ha-1")
        assert len(found) == 2, found
        old, new = found
        assert {k: old[k] for k in ("id", "level", "opened_at", "restored_at", "clocks")} == \
               {k: before[k] for k in ("id", "level", "opened_at", "restored_at", "clocks")}
        assert new["opened_at"] == fault_2[0].isoformat() and new["state"] == "open" and new["level"] == 3, new
        assert tickets(survivor, eng, "mis-ha-2") == []
        try:
            wait_for(lambda: tickets(survivor, eng, "mis-ha-4")[0]["state"] == "restored", 20, "restored")
        except AssertionError:
            print(new_leader.log()[-20000:])
            raise
        (after_4,) = tickets(survivor, eng, "mis-ha-4")
        assert (after_4["id"], after_4["opened_at"], after_4["level"]) == \
               (before_4["id"], before_4["opened_at"], before_4["level"])
        assert after_4["state"] == "restored" and after_4["restored_at"] == across[1].isoformat(), after_4
        assert after_4["clocks"]["response"] == before_4["clocks"]["response"]

        _stored_once(pg, vm, [twin["batch_id"], *(bid for s in senders for bid in s.acked)],
                     {"mis-ha-1": sum(len(x["samples"]) for x in s1.batches),
                      "mis-ha-2": 1 + sum(len(x["samples"]) for x in s2.batches),
                      "mis-ha-4": sum(len(x["samples"]) for x in s4.batches)})
        print(f"\nfailover: kill -> replica {leader_name} leads in {takeover:.2f} s; kill -> new ticket in "
              f"{ticket_s:.2f} s")


def _stored_once(pg: postgres.Postgres, vm: victoria.Victoria, acked: list[str], samples: dict[str, int]) -> None:
    engine = create_engine(pg.url)
    try:
        with engine.connect() as conn:
            ids = {r[0] for r in conn.execute(text("SELECT batch_id FROM batches"))}
            assert set(acked) <= ids and len(ids) == len(set(acked)), "a batch stored twice, or lost"
            for device, n in samples.items():
                counted = conn.execute(text(
                    "SELECT sum(r.count) FROM rollups r JOIN series s ON s.id = r.series_id "
                    "WHERE r.resolution = 300 AND s.device = :d AND s.metric = 'up'"), {"d": device}).scalar_one()
                assert counted == n, f"{device}: {counted} samples in the rollups, {n} acknowledged"
    finally:
        engine.dispose()
    httpx.get(f"{vm.url}/internal/force_flush", timeout=10)
    for device, n in samples.items():
        for _ in range(50):  # bounded: 5 s
            r = httpx.get(f"{vm.url}/api/v1/export", params={"match[]": f'{{device="{device}"}}'}, timeout=10)
            stamps = {ts for line in r.text.splitlines() if line.strip()
                      for ts in httpx.Response(200, content=line).json()["timestamps"]}
            if len(stamps) >= n:
                break
            time.sleep(0.1)
        assert len(stamps) == n, f"{device}: {len(stamps)} distinct times in VictoriaMetrics, {n} acknowledged"


def test_an_agent_fails_over_when_the_first_collector_is_down(tmp_path: Path, pg: postgres.Postgres,
                                                               vm: victoria.Victoria) -> None:
    (tmp_path / "c").mkdir()
    with run_collector(tmp_path / "c", replica_config(pg, vm, "c")) as c:
        tok = c.token("site-ha-3")
        r = httpx.put(f"{c.url}/api/v1/inventory", json=registration("site-ha-3", "mis-ha-3"),
                      headers={"Authorization": f"Bearer {tok}"}, timeout=10)
        assert r.status_code == 200, r.text
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        spool = Spool(tmp_path / "spool.db")
        t0 = datetime.now(CST).replace(microsecond=0) - timedelta(minutes=30)
        spool.append([Sample("mis-ha-3", "up", 1.0, t0 + i * STEP) for i in range(20)])
        shipper = Shipper(spool, ShipperConfig(url=f"{dead},{c.url}", agent="site-ha-3", batch_items=5,
                                               reconnect_max_s=0.2, backoff_initial_s=0.1), tok)

        async def drain() -> int:
            try:
                return await shipper.drain(20.0)
            finally:
                await shipper.aclose()

        acked = asyncio.run(drain())
        assert acked == 4 and spool.depth() == 0  # dropped from the spool only once acknowledged
        assert isinstance(shipper.sink, HttpSink) and shipper.sink.current == 1
        spool.close()


def test_the_feed_keeps_commit_order(pg: postgres.Postgres, tmp_path: Path) -> None:
    """Two ingest transactions at once: the second takes its feed id only after the first has committed
    (sequence ids alone are not in commit order), so a reader that has seen id N never misses a row that
    becomes visible later with a smaller id."""
    (tmp_path / "d").mkdir()
    with run_collector(tmp_path / "d", {"state_url": pg.url, "ha": {"replica": "d"}}):
        pass  # the schema is migrated
    engine = create_engine(pg.url)
    writer = FeedWriter(())

    def one() -> IngestBatch:
        return IngestBatch.model_validate({"batch_id": str(uuid.uuid4()), "agent": "site-ha-1", "samples": [
            {"device": "mis-ha-1", "metric": "up", "value": 1.0, "ts": "2026-11-25T09:00:00+08:00"}]})

    try:
        first, second = one(), one()
        ids: dict[str, int] = {}
        done = threading.Event()
        with engine.connect() as c1:
            tx1 = c1.begin()
            writer(c1, [first])  # holds the feed lock until its commit

            def later() -> None:
                with engine.begin() as c2:
                    writer(c2, [second])
                done.set()

            t = threading.Thread(target=later)
            t.start()
            assert not done.wait(0.5), "the second writer did not wait for the first one's commit"
            with engine.connect() as r:
                assert r.execute(text("SELECT count(*) FROM engine_feed WHERE batch_id IN (:a, :b)"),
                                 {"a": str(first.batch_id), "b": str(second.batch_id)}).scalar_one() == 0
            tx1.commit()
        assert done.wait(10)
        t.join(10)
        with engine.connect() as r:
            for bid in (first.batch_id, second.batch_id):
                ids[str(bid)] = int(r.execute(text("SELECT id FROM engine_feed WHERE batch_id = :b"),
                                              {"b": str(bid)}).scalar_one())
        assert ids[str(first.batch_id)] < ids[str(second.batch_id)]
    finally:
        engine.dispose()


def test_a_new_leader_acts_on_what_was_stored_while_none_led(tmp_path: Path, pg: postgres.Postgres,
                                                             vm: victoria.Victoria) -> None:
    """The leader dies during an outage; only an ingest-only replica (``ha.candidate: false``) is left, and it
    stores the outage's end and a whole second outage; a replica started afterwards leads, replays, and
    restores the first ticket at its own time and opens (and restores) the second: nothing was acted on live."""
    for name in ("f", "g", "h"):
        (tmp_path / name).mkdir()
    with ExitStack() as stack:
        f = stack.enter_context(run_collector(tmp_path / "f", replica_config(pg, vm, "f")))
        wait_for(lambda: health(f).get("leader") is True, 15, "replica f leads")
        g = stack.enter_context(run_collector(tmp_path / "g", {**replica_config(pg, vm, "g"), "ha": {
            "replica": "g", "candidate": False}}))
        eng, tok = f.token("li", "engineer"), f.token("site-ha-6")
        auth = {"Authorization": f"Bearer {tok}"}
        r = httpx.put(f"{g.url}/api/v1/inventory", json=registration("site-ha-6", "mis-ha-6"), headers=auth, timeout=10)
        assert r.status_code == 200, r.text
        day = (datetime.now(CST) - timedelta(days=1)).date()
        first, second = (at(day, 9, 20), at(day, 9, 30)), (at(day, 10, 5), at(day, 10, 15))
        batches = chunks("site-ha-6", timeline(day, "mis-ha-6", [first, second]))
        for b in batches[:5]:  # 09:00-09:24 to the leader: the first outage begins
            assert httpx.post(f"{f.url}/api/v1/ingest", json=b, headers=auth, timeout=10).status_code == 200
        wait_for(lambda: len(tickets(f.url, eng, "mis-ha-6")) == 1, 30, "replica f opens the first ticket")
        opened = tickets(f.url, eng, "mis-ha-6")[0]
        os.kill(f.proc.pid, signal.SIGKILL)
        f.proc.wait(10)
        for b in batches[5:]:  # the rest, stored while no replica leads
            assert httpx.post(f"{g.url}/api/v1/ingest", json=b, headers=auth, timeout=10).status_code == 200
        time.sleep(1.0)
        assert health(g)["leader"] is False
        assert [t["state"] for t in tickets(g.url, eng, "mis-ha-6")] == ["open"]  # no engine acted
        h = stack.enter_context(run_collector(tmp_path / "h", replica_config(pg, vm, "h")))
        wait_for(lambda: health(h).get("leader") is True, 15, "replica h leads")
        wait_for(lambda: [t["state"] for t in tickets(h.url, eng, "mis-ha-6")] == ["restored", "restored"], 30,
                 f"replica h restores the first ticket and opens the second:\n{h.log()[-3000:]}")
        one, two = tickets(h.url, eng, "mis-ha-6")
        assert (one["id"], one["opened_at"], one["restored_at"]) == (opened["id"], first[0].isoformat(),
                                                                     first[1].isoformat())
        assert (two["opened_at"], two["restored_at"], two["level"]) == (second[0].isoformat(),
                                                                        second[1].isoformat(), 3), two


def test_a_replica_with_two_workers_runs_one_engine(tmp_path: Path, pg: postgres.Postgres,
                                                   vm: victoria.Victoria) -> None:
    """``workers: 2`` on PostgreSQL: each worker process is a candidate; one leads and turns the batches that
    either worker ingested into one ticket per fault, and the report scheduler is among what it runs."""
    (tmp_path / "w").mkdir()
    state = create_engine(pg.url)

    def scheduler_started() -> bool:  # its first tick records when it first ran
        with state.begin() as c:
            if c.execute(text("SELECT to_regclass('report_runs')")).scalar_one() is None:
                return False
            return bool(c.execute(text("SELECT count(*) FROM report_runs WHERE job = 'scheduler'")).scalar_one())

    if scheduler_started():
        with state.begin() as c:
            c.execute(text("DELETE FROM report_runs WHERE job = 'scheduler'"))
    cfg = {**replica_config(pg, vm, "w"), "workers": 2, "reports": {"check_interval_s": 0.5}}
    with run_collector(tmp_path / "w", cfg) as w:
        wait_for(lambda: health(w).get("leader_replica") == "w", 15, "a worker of replica w leads")
        eng, tok = w.token("qian", "engineer"), w.token("site-ha-8")
        auth = {"Authorization": f"Bearer {tok}"}
        r = httpx.put(f"{w.url}/api/v1/inventory", json=registration("site-ha-8", "mis-ha-8"), headers=auth,
                      timeout=10)
        assert r.status_code == 200, r.text
        day = (datetime.now(CST) - timedelta(days=1)).date()
        outage = (at(day, 9, 20), at(day, 9, 30))
        for b in chunks("site-ha-8", timeline(day, "mis-ha-8", [outage])):  # spread over both workers
            with httpx.Client(timeout=10) as fresh:  # a new connection each: the kernel picks the worker
                assert fresh.post(f"{w.url}/api/v1/ingest", json=b, headers=auth).status_code == 200
        wait_for(lambda: [t["state"] for t in tickets(w.url, eng, "mis-ha-8")] == ["restored"], 30,
                 f"one ticket, opened and restored:\n{w.log()[-3000:]}")
        (t,) = tickets(w.url, eng, "mis-ha-8")
        assert (t["opened_at"], t["restored_at"]) == (outage[0].isoformat(), outage[1].isoformat())
        assert w.log().count("starting the contract engine") == 1
        wait_for(scheduler_started, 15, "the leading worker runs the report scheduler")
    state.dispose()


def test_a_leader_whose_term_ended_commits_nothing_more(tmp_path: Path, pg: postgres.Postgres,
                                                        vm: victoria.Victoria) -> None:
    """The leader's election session is ended by the server and another session takes the lock and records
    a new term, as a replica elected next would; the old leader's elector would notice only at its next check
    (30 s here). Meanwhile its engine is given the end of the outage and a second outage: the leader fence
    refuses the commit, nothing of it is kept (the ticket stays open, no second one) and the engine stops."""
    (tmp_path / "k").mkdir()
    cfg = replica_config(pg, vm, "k")
    cfg["ha"] = {**cfg["ha"], "check_interval_s": 30.0, "step_down_after_s": 60.0}
    with run_collector(tmp_path / "k", cfg) as k:
        wait_for(lambda: health(k).get("leader") is True, 15, "replica k leads")
        eng, tok = k.token("zhao", "engineer"), k.token("site-ha-7")
        auth = {"Authorization": f"Bearer {tok}"}
        r = httpx.put(f"{k.url}/api/v1/inventory", json=registration("site-ha-7", "mis-ha-7"), headers=auth,
                      timeout=10)
        assert r.status_code == 200, r.text
        day = (datetime.now(CST) - timedelta(days=1)).date()
        batches = chunks("site-ha-7", timeline(day, "mis-ha-7", [(at(day, 9, 20), at(day, 9, 30)),
                                                                 (at(day, 10, 5), at(day, 10, 15))]))
        for b in batches[:5]:  # 09:00-09:24: the first outage begins
            assert httpx.post(f"{k.url}/api/v1/ingest", json=b, headers=auth, timeout=10).status_code == 200
        wait_for(lambda: len(tickets(k.url, eng, "mis-ha-7")) == 1, 30, "replica k opens the ticket")
        engine = create_engine(pg.url)
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
                ended = other.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                           "WHERE application_name = 'weibao-elector'")).scalars().all()
                assert ended == [True]
                wait_for(lambda: bool(other.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                                    {"k": LEADER_LOCK}).scalar_one()), 10, "the lock is free")
                with engine.begin() as tx:  # as the next leader records its term
                    tx.execute(text("SELECT term FROM engine_leader WHERE id = 1 FOR UPDATE"))
                    term = tx.execute(text("UPDATE engine_leader SET term = term + 1, holder = 'test' "
                                              "WHERE id = 1 RETURNING term")).scalar_one()
                for b in batches[5:]:  # the end of the first outage, and the second
                    assert httpx.post(f"{k.url}/api/v1/ingest", json=b, headers=auth, timeout=10).status_code == 200
                wait_for(lambda: "contract engine stops, its last changes undone" in k.log(), 20,
                         f"the engine is fenced off:\n{k.log()[-3000:]}")
                assert f"the leader row names term {term}" in k.log()
                time.sleep(1.0)
                found = tickets(k.url, eng, "mis-ha-7")
                assert [t["state"] for t in found] == ["open"], found
                assert health(k).get("leader") is True  # its elector has not noticed yet: the fence did it
                other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK})
        finally:
            engine.dispose()


def _pg_ctl(pg: postgres.Postgres, *args: str) -> None:
    subprocess.run(postgres._as_postgres([str(postgres.BIN / "pg_ctl"), "-D", str(pg.datadir), *args]),
                   check=True, capture_output=True, timeout=60)


def test_without_postgresql_a_replica_steps_down_and_refuses_batches(
        tmp_path: Path, pg: postgres.Postgres, vm: victoria.Victoria) -> None:
    """Runs last in this module: it stops the module's PostgreSQL and starts it again."""
    (tmp_path / "e").mkdir()
    with run_collector(tmp_path / "e", replica_config(pg, vm, "e")) as e:
        wait_for(lambda: health(e).get("leader") is True, 15, "replica e leads")
        tok = e.token("site-ha-5")
        r = httpx.put(f"{e.url}/api/v1/inventory", json=registration("site-ha-5", "mis-ha-5"),
                      headers={"Authorization": f"Bearer {tok}"}, timeout=10)
        assert r.status_code == 200, r.text
        one = chunks("site-ha-5", [{"device": "mis-ha-5", "metric": "up", "value": 1.0, "labels": {},
                                    "ts": datetime.now(CST).replace(microsecond=0).isoformat()}])[0]
        _pg_ctl(pg, "-m", "immediate", "-w", "stop")
        lost = time.monotonic()
        try:
            stepped = wait_for(lambda: health(e).get("leader") is False, 10, "replica e steps down")
            assert health(e)["status"] == "error"
            r = httpx.post(f"{e.url}/api/v1/ingest", json=one, headers={"Authorization": f"Bearer {tok}"},
                           timeout=10)
            assert r.status_code == 503, r.text  # the agent keeps the batch in its spool
        finally:
            sockdir = pg.datadir.parent / "sock"
            _pg_ctl(pg, "-o", f"-p {pg.port} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "-l", str(pg.datadir.parent / "pg.log"), "-w", "-t", "60", "start")
        back = wait_for(lambda: health(e).get("leader") is True, 20, "replica e leads again")
        r = httpx.post(f"{e.url}/api/v1/ingest", json=one, headers={"Authorization": f"Bearer {tok}"}, timeout=10)
        assert r.status_code == 200 and r.json()["duplicate"] is False, r.text
        print(f"\nPostgreSQL lost: replica e stepped down within {stepped:.2f} s; leads again {back:.2f} s "
              f"after PostgreSQL is back ({time.monotonic() - lost:.1f} s in all)")
