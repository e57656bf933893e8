"""The agent daemon end to end: real ICMP polls of loopback devices shipped to the real collector.

What the collector holds is read from its own SQLite files (ts_samples, batches); what the agent holds
from its spool file. Exactly-once: every row the agent acknowledged is in the collector once, the
collector's per-batch sample counts add up to what it stores, and nothing is left behind.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.peers.collector import REPO, CollectorPeer, free_port, run_collector, wait_http
from weibao.agent.spool import SPOOL_FILE, SpoolStats, open_stats
from weibao.core.timeutil import to_ms

AGENT = "e2e-agent"

INVENTORY = """\
site: e2e
defaults:
  kind: server
  category: mis
  icmp: {{count: 3, interval_ms: 10, timeout_ms: 300}}
  schedule: {{icmp_s: 1, timeout_s: 5}}
devices:
{devices}
"""


def inventory_text(*addresses: str) -> str:
    lines = [f"  - {{name: lo-{a.rsplit('.', 1)[1]}, address: {a}}}" for a in addresses]
    return INVENTORY.format(devices="\n".join(lines))


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Agent:
    args: list[str]
    data: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "weibao", "agent", *self.args],
                                         cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stats(self) -> SpoolStats:
        return open_stats(self.data / SPOOL_FILE)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def agent_for(peer: CollectorPeer, tmp: Path, *extra: str, addresses: tuple[str, ...] = ("127.0.0.1", "127.0.0.2"),
              inventory: str | None = None) -> Iterator[Agent]:
    token = tmp / "agent.token"
    token.write_text(peer.token(AGENT) + "\n")
    token.chmod(0o600)
    inv = tmp / "inventory.yaml"
    inv.write_text(inventory or inventory_text(*addresses))
    traps = [] if "--traps" in extra else ["--no-traps"]
    agent = Agent(["--inventory", str(inv), "--collector", peer.url, "--token-file", str(token),
                   "--data", str(tmp / "agent"), "--name", AGENT, *traps, "--backoff-max-s", "0.5",
                   "--drain-s", "3", "--final-ship-s", "5", *extra], tmp / "agent", tmp / "agent.log")
    agent.start()
    try:
        yield agent
    finally:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait()


def collector_db(peer: CollectorPeer) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{peer.data_dir / 'state.db'}?mode=ro", uri=True, timeout=10)


def stored(peer: CollectorPeer) -> dict[tuple[str, str, int], int]:
    """(device, metric, ts_ms) -> how many times the collector stored it."""
    db = collector_db(peer)
    try:
        rows = db.execute("SELECT s.device, s.metric, t.ts_ms, count(*) FROM ts_samples t "
                          "JOIN ts_series s ON s.id = t.series_id GROUP BY 1, 2, 3").fetchall()
    finally:
        db.close()
    return {(d, m, int(ts)): int(n) for d, m, ts, n in rows}


def batch_totals(peer: CollectorPeer) -> tuple[int, int]:
    db = collector_db(peer)
    try:
        n, total = db.execute("SELECT count(*), coalesce(sum(samples), 0) FROM batches").fetchone()
    finally:
        db.close()
    return int(n), int(total)


def restart(peer: CollectorPeer) -> None:
    """Start the collector again on the same port and data (after ``peer.stop()``)."""
    with peer.log_path.open("ab") as log:
        peer.proc = subprocess.Popen([sys.executable, "-m", "weibao", "-v", "collector", "--config",
                                      str(peer.config_path)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    wait_http(f"{peer.url}/healthz", peer.proc)


def assert_exactly_once(peer: CollectorPeer, agent: Agent) -> dict[tuple[str, str, int], int]:
    st = agent.stats()
    assert st.rows == 0 and st.pending_batches == 0, "rows left in the agent's spool"
    assert st.dead == [] and st.counters.get("dropped_full", 0) == 0
    have = stored(peer)
    assert set(have.values()) == {1}
    _, total = batch_totals(peer)
    # every acknowledged row once: what the agent shipped == what the batches brought == what is stored
    assert st.counters["shipped_rows"] == total == len(have)
    return have


def up_gaps(have: dict[tuple[str, str, int], int], device: str) -> float:
    ts = sorted(t for (d, m, t) in have if d == device and m == "up")
    return max((b - a) / 1000 for a, b in itertools.pairwise(ts))


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorPeer]:
    (tmp_path / "collector").mkdir()
    with run_collector(tmp_path / "collector") as peer:
        yield peer


def test_token_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token-value\n")
    token.chmod(0o640)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(inventory_text("127.0.0.1"))
    out = subprocess.run([sys.executable, "-m", "weibao", "agent", "--inventory", str(inv),
                          "--collector", "http://127.0.0.1:9", "--token-file", str(token), "--data",
                          str(tmp_path / "data"), "--no-traps"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "readable by others" in out.stderr and "0640" in out.stderr
    assert "s3cret-token-value" not in out.stderr + out.stdout


def test_outage_of_the_collector_costs_nothing(collector: CollectorPeer, tmp_path: Path) -> None:
    metrics_port = free_port()
    with agent_for(collector, tmp_path, "--metrics-port", str(metrics_port)) as agent:
        wait_for("first samples at the collector", lambda: len(stored(collector)) >= 24)
        collector.stop()
        outage_start = time.time()
        wait_for("a backlog in the spool", lambda: agent.stats().rows >= 48, timeout=15)
        st = agent.stats()
        assert st.meta["last_ship"]["outcome"] == "retry"
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert "weibao_agent_spool_rows" in text and "weibao_agent_last_ship_ok 0" in text
        status = subprocess.run([sys.executable, "-m", "weibao", "agent", "status", "--data",
                                 str(agent.data)], cwd=REPO, capture_output=True, text=True, timeout=30)
        assert "last ship: retry" in status.stdout and "oldest unsent: " in status.stdout
        restart(collector)
        outage = time.time() - outage_start
        wait_for("the backlog shipped", lambda: agent.stats().rows == 0, timeout=20)
        time.sleep(1.5)
        assert agent.stop() == 0
    have = assert_exactly_once(collector, agent)
    for device in ("lo-1", "lo-2"):
        assert up_gaps(have, device) < 2.5, f"a hole in {device}'s series across a {outage:.0f} s outage"
    assert "stopped:" in agent.log()
    assert (tmp_path / "agent.token").read_text().strip() not in agent.log()


def pending_batch(agent: Agent) -> tuple[str, list[dict[str, object]]]:
    """The batch assigned in the agent's spool and its samples, read from the file."""
    spool = sqlite3.connect(f"file:{agent.data / SPOOL_FILE}?mode=ro", uri=True, timeout=10)
    try:
        (batch_id,), = spool.execute("SELECT batch_id FROM batches").fetchall()
        rows = [json.loads(p) for (p,) in spool.execute(
            "SELECT payload FROM items WHERE batch_id = ? AND kind = 's'", (batch_id,))]
    finally:
        spool.close()
    return str(batch_id), rows


def in_flight_batch(agent: Agent, peer: CollectorPeer) -> str | None:
    """The one batch assigned in the spool that the collector has not applied, if that is what there is."""
    spool = sqlite3.connect(f"file:{agent.data / SPOOL_FILE}?mode=ro", uri=True, timeout=10)
    try:
        ids = [str(b) for (b,) in spool.execute("SELECT batch_id FROM batches").fetchall()]
    finally:
        spool.close()
    if len(ids) != 1 or collector_has(peer, ids[0]):
        return None
    return ids[0]


def collector_has(peer: CollectorPeer, batch_id: str) -> int:
    db = collector_db(peer)
    try:
        return int(db.execute("SELECT count(*) FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()[0])
    finally:
        db.close()


@pytest.mark.parametrize("applied", [False, True], ids=["before-the-collector-had-it", "after-it-applied-it"])
def test_sigkill_during_a_shipment_loses_and_duplicates_nothing(collector: CollectorPeer, tmp_path: Path,
                                                                applied: bool) -> None:
    """SIGKILL with a batch in flight; restarted, the agent re-sends the same batch_id.

    applied=False: the collector is frozen, the request never processed. applied=True: the agent is
    frozen while the collector applies the batch and answers, then killed before it reads the answer:
    the re-sent batch must be answered as a duplicate and add nothing.
    """
    assert collector.proc is not None
    with agent_for(collector, tmp_path, "--batch-size", "10") as agent:
        wait_for("first samples at the collector", lambda: len(stored(collector)) >= 12)
        os.kill(collector.proc.pid, signal.SIGSTOP)
        try:
            # a batch the frozen collector has not applied: one answered just before the freeze may
            # still show as pending for a moment, until the agent reads its answer and deletes it
            wait_for("a batch in flight", lambda: in_flight_batch(agent, collector) is not None, timeout=15)
            batch_id, in_flight = pending_batch(agent)
            if applied:
                agent.signal(signal.SIGSTOP)
                os.kill(collector.proc.pid, signal.SIGCONT)
                wait_for("the collector to apply the batch", lambda: collector_has(collector, batch_id) == 1)
            agent.signal(signal.SIGKILL)
            assert agent.proc is not None
            agent.proc.wait()
        finally:
            os.kill(collector.proc.pid, signal.SIGCONT)
        assert in_flight
        agent.start()
        wait_for("the agent to catch up", lambda: agent.stats().rows == 0 and collector_has(collector, batch_id) == 1,
                 timeout=20)
        time.sleep(1.5)
        assert agent.stop() == 0
    have = assert_exactly_once(collector, agent)
    assert collector_has(collector, batch_id) == 1
    for s in in_flight:
        assert have[(str(s["device"]), str(s["metric"]), to_ms(datetime.fromisoformat(str(s["ts"]))))] == 1
    if applied:
        assert agent.stats().counters.get("duplicate_batches", 0) >= 1


def test_sighup_keeps_the_old_inventory_when_the_new_one_is_broken(collector: CollectorPeer,
                                                                   tmp_path: Path) -> None:
    with agent_for(collector, tmp_path) as agent:
        wait_for("first samples", lambda: len(stored(collector)) >= 12)
        inv = tmp_path / "inventory.yaml"
        inv.write_text(inventory_text("127.0.0.1", "127.0.0.2").replace("kind: server", "kind: toaster"))
        agent.signal(signal.SIGHUP)

        def refused() -> bool:
            reload = (agent.stats().meta.get("daemon") or {}).get("last_reload") or {}
            return reload.get("at") is not None and not reload["ok"]

        wait_for("the reload to be refused", refused, timeout=10)
        problems = agent.stats().meta["daemon"]["last_reload"]["problems"]
        assert any("inventory.yaml:" in p and "kind" in p for p in problems)
        before = sum(1 for (d, m, _) in stored(collector) if d == "lo-1" and m == "up")
        wait_for("polling to go on", lambda: sum(1 for (d, m, _) in stored(collector)
                                                 if d == "lo-1" and m == "up") >= before + 2, timeout=10)
        status = subprocess.run([sys.executable, "-m", "weibao", "agent", "status", "--data",
                                 str(agent.data)], cwd=REPO, capture_output=True, text=True, timeout=30)
        assert "last reload at" in status.stdout and "refused" in status.stdout
        # a valid inventory with a new device: registered again, its samples accepted
        inv.write_text(inventory_text("127.0.0.1", "127.0.0.2", "127.0.0.3"))
        agent.signal(signal.SIGHUP)
        wait_for("samples of the new device", lambda: any(d == "lo-3" for (d, _, _) in stored(collector)),
                 timeout=15)
        assert agent.proc is not None and agent.proc.poll() is None
        time.sleep(1)
        assert agent.stop() == 0
    assert_exactly_once(collector, agent)
    db = collector_db(collector)
    names = {n for (n,) in db.execute("SELECT name FROM devices")}
    db.close()
    assert {"lo-1", "lo-2", "lo-3"} <= names
    assert "s3cret" not in agent.log()


TRAP_INVENTORY = """\
site: e2e
credentials:
  trap: {credential}
defaults:
  kind: ups
  category: business
  icmp: {{count: 3, interval_ms: 10, timeout_ms: 300}}
  snmp: {{credential: trap, port: {snmp_port}, timeout_s: 0.5, retries: 0}}
  schedule: {{icmp_s: 1, snmp_s: 60, timeout_s: 5}}
devices:
  - {{name: ups-1, address: 127.0.0.5}}
"""
TRAP_V2 = "{type: snmp, version: 2c, community: e2e-trap-community}"
TRAP_V3 = ("{type: snmp, version: 3, user: e2euser, auth_protocol: SHA-256, auth_key: e2e-auth-pass, "
           "priv_protocol: AES-128, priv_key: e2e-priv-pass}")


@pytest.mark.skipif(shutil.which("snmptrap") is None, reason="net-snmp's snmptrap is not installed")
def test_a_trap_reaches_the_collector_as_an_event(collector: CollectorPeer, tmp_path: Path) -> None:
    trap_port = free_port()
    with agent_for(collector, tmp_path, "--traps", f"127.0.0.1:{trap_port}",
                   inventory=TRAP_INVENTORY.format(credential=TRAP_V2, snmp_port=free_port())) as agent:
        wait_for("first samples", lambda: any(d == "ups-1" for (d, _, _) in stored(collector)))
        subprocess.run(["snmptrap", "-v", "2c", "-c", "e2e-trap-community", "--clientaddr=127.0.0.5",
                        f"127.0.0.1:{trap_port}", "", "1.3.6.1.2.1.33.2.1"], env={"MIBS": ""}, check=True,
                       timeout=10)

        def events() -> list[tuple[str, str, str]]:
            db = collector_db(collector)
            try:
                return [tuple(r) for r in db.execute("SELECT device, kind, data FROM events")]
            finally:
                db.close()

        wait_for("the trap at the collector", lambda: bool(events()), timeout=15)
        assert agent.stop() == 0
    ((device, kind, data),) = events()
    assert (device, kind) == ("ups-1", "trap")
    assert json.loads(data)["trap"] == "upsTrapOnBattery"
    assert "e2e-trap-community" not in data + agent.log()


@pytest.mark.skipif(shutil.which("snmptrap") is None, reason="net-snmp's snmptrap is not installed")
def test_a_learned_v3_engine_is_remembered_across_a_restart(collector: CollectorPeer, tmp_path: Path) -> None:
    """The first v3 trap of an unknown engine is lost once (it teaches the engine ID), never again after
    a restart of the agent."""
    trap_port = free_port()
    inventory = TRAP_INVENTORY.format(credential=TRAP_V3, snmp_port=free_port())

    def trap(oid: str) -> None:
        subprocess.run(["snmptrap", "-v3", "-u", "e2euser", "-l", "authPriv", "-a", "SHA-256", "-A", "e2e-auth-pass",
                        "-x", "AES", "-X", "e2e-priv-pass", "-e", "0x80001f8880e2e0e2e001", "--clientaddr=127.0.0.5",
                        f"127.0.0.1:{trap_port}", "", oid], env={"MIBS": ""}, check=True, timeout=10)

    def traps() -> list[str]:
        db = collector_db(collector)
        try:
            return [json.loads(d)["trap"] for (d,) in db.execute(
                "SELECT data FROM events WHERE device = 'ups-1' AND kind = 'trap' ORDER BY ts_ms")]
        finally:
            db.close()

    before = len(traps())
    with agent_for(collector, tmp_path, "--traps", f"127.0.0.1:{trap_port}", inventory=inventory) as agent:
        wait_for("first samples", lambda: any(d == "ups-1" for (d, _, _) in stored(collector)))
        trap("1.3.6.1.6.3.1.1.5.1")  # coldStart: lost, its engine ID learned
        wait_for("the engine learned", lambda: "could not be read before its engine ID" in agent.log(), timeout=10)
        trap("1.3.6.1.2.1.33.2.1")  # upsTrapOnBattery: received
        wait_for("the second trap at the collector", lambda: len(traps()) == before + 1, timeout=15)
        assert agent.stop() == 0
        marker = len(agent.log())
        agent.start()  # the same data directory
        wait_for("the agent back", lambda: "receiving SNMP traps" in agent.log()[marker:], timeout=15)
        trap("1.3.6.1.6.3.1.1.5.2")  # warmStart: the first trap after the restart is received
        wait_for("the trap after the restart", lambda: len(traps()) == before + 2, timeout=15)
        assert agent.stop() == 0
    assert traps()[before:] == ["upsTrapOnBattery", "warmStart"]
    assert agent.log().count("could not be read before its engine ID") == 1
    assert "e2e-auth-pass" not in agent.log() and "e2e-priv-pass" not in agent.log()


def dead_bodies(agent: Agent) -> dict[str, list[dict[str, object]]]:
    """batch_id -> the samples of each dead letter, read from the agent's spool file."""
    spool = sqlite3.connect(f"file:{agent.data / SPOOL_FILE}?mode=ro", uri=True, timeout=10)
    try:
        return {str(b): json.loads(body)["samples"] for b, body in spool.execute("SELECT batch_id, body FROM dead")}
    finally:
        spool.close()


def test_a_batch_the_collector_refuses_for_good_is_dead_lettered(tmp_path: Path) -> None:
    """A batch above the collector's max_batch_samples: 413 from the real collector, dead-lettered with
    its reason, shown by ``weibao agent status`` and the agent's /metrics, and never stored."""
    limit = 5
    (tmp_path / "collector").mkdir()
    with run_collector(tmp_path / "collector", {"limits": {"max_batch_samples": limit}}) as peer:
        metrics_port = free_port()
        # one ICMP round of two devices already brings more than `limit` samples
        with agent_for(peer, tmp_path, "--batch-size", "1000", "--metrics-port", str(metrics_port)) as agent:

            def dead_letters() -> int:
                try:
                    return len(agent.stats().dead)
                except (FileNotFoundError, sqlite3.OperationalError):  # the agent is still creating its spool
                    return 0

            wait_for("a dead letter", lambda: dead_letters() >= 1, timeout=15)
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            assert agent.stop() == 0
        status = subprocess.run([sys.executable, "-m", "weibao", "agent", "status", "--json",
                                 "--data", str(agent.data)], cwd=REPO, capture_output=True, text=True,
                                timeout=30, check=True)
        doc = json.loads(status.stdout)
        dead_in_metrics = [float(line.split()[1]) for line in text.splitlines()
                           if line.startswith("weibao_agent_dead_letter_batches ")]
        assert dead_in_metrics and 1 <= dead_in_metrics[0] <= len(doc["dead_letters"])
        assert doc["dead_letters"], doc
        for d in doc["dead_letters"]:
            assert d["status"] == 413
            reason = json.loads(d["reason"])
            assert reason["reason"] == "too_large"
            assert f"batch of {d['samples']} samples and 0 events exceeds {limit} /" in reason["error"]
            assert d["samples"] > limit
        bodies = dead_bodies(agent)
        assert set(bodies) == {d["batch_id"] for d in doc["dead_letters"]}
        have = stored(peer)
        for batch_id, samples in bodies.items():
            assert collector_has(peer, batch_id) == 0
            assert len(samples) > limit
            for s in samples:
                key = (str(s["device"]), str(s["metric"]), to_ms(datetime.fromisoformat(str(s["ts"]))))
                assert key not in have
        refused = httpx.get(f"{peer.url}/metrics", timeout=5).text
        assert f'weibao_ingest_refused_total{{reason="too_large"}} {len(bodies)}' in refused
