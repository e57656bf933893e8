"""``weibao run`` as a real process: ICMP of 127.0.0.x and SNMP against snmpsim, stored exactly once,
across SIGKILL and restart; SIGTERM exits 0; the API answers while it runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import yaml

from tests.peers.collector import REPO, free_port, wait_http
from tests.peers.snmpsim import read_recording, running_snmpsim
from weibao.core.timeutil import to_ms
from weibao.embedded.simlab import SnmpSim

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ICMP_DEVICES = ("host-2", "host-3", "host-4")
UPS = "ups-1"
UPS_RECORDING = "UPS/eaton-93e-80"
UPS_CHARGE_OID = "1.3.6.1.2.1.33.1.2.4.0"  # upsEstimatedChargeRemaining


def weibao_command() -> list[str]:
    return [sys.executable, "-m", "weibao"]


def write_site(work: Path, sim: SnmpSim) -> Path:
    secrets = work / "secrets.yaml"
    secrets.write_text(yaml.safe_dump({"ups_community": sim.community_for(UPS)}))
    os.chmod(secrets, 0o600)
    devices: list[dict[str, object]] = [
        {"name": name, "address": f"127.0.0.{i + 2}", "kind": "server", "category": "mis",
         "schedule": {"icmp_s": 1}} for i, name in enumerate(ICMP_DEVICES)]
    # SNMP only: its `up` comes from the SNMP answer
    devices.append({"name": UPS, "address": sim.host, "kind": "ups", "category": "business",
                    "icmp": {"enabled": False}, "schedule": {"snmp_s": 5},
                    "snmp": {"credential": "ups", "port": sim.port, "timeout_s": 4, "retries": 2}})
    doc = {"site": "embedded-lab", "secrets_file": "secrets.yaml",
           "credentials": {"ups": {"type": "snmp", "version": "2c", "community": "${secret:ups_community}"}},
           "defaults": {"icmp": {"count": 2, "interval_ms": 20}}, "devices": devices}
    path = work / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@contextmanager
def weibao_run(inventory: Path, data: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    cmd = [*weibao_command(), "-v", "run", "--inventory", str(inventory), "--data", str(data),
           "--listen", f"127.0.0.1:{port}", "--no-traps", "--drain-s", "5", "--final-ship-s", "5"]
    with open(log, "ab") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=err, stderr=err)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=60)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def raw_keys(state: Path) -> list[tuple[str, str, str, int]]:
    """(device, metric, labels, ts_ms) of every raw sample, read from the collector's SQLite file."""
    with db(state) as conn:
        return [(r["device"], r["metric"], r["labels"], r["ts_ms"]) for r in conn.execute(
            "SELECT s.device, s.metric, s.labels, t.ts_ms FROM ts_samples t JOIN ts_series s ON s.id = t.series_id")]


def wait_for(what: str, cond: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path,
             timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"weibao run exited with {proc.returncode} while waiting for {what}"
        if cond():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: {log.read_text()[-3000:]}")


def stored_keys(state: Path) -> set[tuple[str, str, int]]:
    return {(d, m, t) for d, m, _, t in raw_keys(state)}


def spooled(spool: Path) -> set[tuple[str, str, int]]:
    """(device, metric, ts_ms) of every sample in the agent's spool file."""
    with db(spool) as conn:
        return {(p["device"], p["metric"], to_ms(datetime.fromisoformat(p["ts"]))) for p in
                (json.loads(r["payload"]) for r in conn.execute("SELECT payload FROM items WHERE kind = 's'"))}


def rounds(keys: set[tuple[str, str, int]]) -> int:
    """How many ICMP rounds of every ICMP device ``keys`` hold (counted by their ``up`` samples)."""
    return min(sum(1 for d, m, _ in keys if d == device and m == "up") for device in ICMP_DEVICES)


@contextmanager
def holding_writes(state: Path) -> Iterator[None]:
    """Hold the write lock of the collector's SQLite file (readers go on; writers wait, then fail)."""
    conn = sqlite3.connect(state, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def per_device(state: Path, metric: str) -> dict[str, int]:
    with db(state) as conn:
        return {r[0]: r[1] for r in conn.execute(
            "SELECT s.device, count(*) FROM ts_samples t JOIN ts_series s ON s.id = t.series_id "
            "WHERE s.metric = ? GROUP BY s.device", (metric,))}


def test_run_stores_exactly_once_across_kill_and_restart(tmp_path: Path) -> None:
    charge = float(read_recording(UPS_RECORDING)[UPS_CHARGE_OID][1])
    with running_snmpsim({UPS: UPS_RECORDING}) as sim:
        inventory = write_site(tmp_path, sim)
        data = tmp_path / "data"
        state = data / "state.db"
        spool = data / "agent" / "spool.db"
        port = free_port()
        log = tmp_path / "run.log"

        with weibao_run(inventory, data, port, log) as proc:
            h = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert h.status_code == 200 and h.json()["status"] == "ok"
            wait_for("3 ICMP rounds and one SNMP round in the store",
                     lambda: state.exists() and all(per_device(state, "up").get(d, 0) >= 3 for d in ICMP_DEVICES)
                     and per_device(state, "ups.battery_charge_pct").get(UPS, 0) >= 1, proc, log)
            # another writer holds the store: the collector cannot commit, the agent goes on polling
            # into its spool, so the kill below strikes with rounds spooled and not stored
            with holding_writes(state):
                wait_for("two ICMP rounds spooled and not stored",
                         lambda: rounds(spooled(spool) - stored_keys(state)) >= 2, proc, log, timeout=30)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        # what the agent had spooled but the collector had not stored when it was killed
        pending = spooled(spool) - stored_keys(state)
        assert rounds(pending) >= 2, pending
        before = len(raw_keys(state))

        with weibao_run(inventory, data, port, log) as proc:
            wait_for("more rounds after the restart", lambda: len(raw_keys(state)) >= before + 2 * len(ICMP_DEVICES),
                     proc, log)
            token = subprocess.run([sys.executable, "-m", "weibao", "token", "issue", "eng", "--role", "engineer",
                                    "--data", str(data)], cwd=REPO, capture_output=True, text=True, timeout=60,
                                   check=True).stdout.strip()
            auth = {"Authorization": f"Bearer {token}"}
            devices = httpx.get(f"http://127.0.0.1:{port}/api/v1/devices", headers=auth, timeout=10).json()["devices"]
            assert {d["name"] for d in devices} == {*ICMP_DEVICES, UPS}
            assert all(d["up"] is True for d in devices), devices
            series = httpx.get(f"http://127.0.0.1:{port}/api/v1/series", headers=auth, timeout=10,
                               params={"device": UPS, "metric": "ups.battery_charge_pct"}).json()["series"]
            assert series and all(p["last"] == charge for s in series for p in s["points"])
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()[-3000:]

    keys = raw_keys(state)
    assert len(set(keys)) == len(keys)
    stored = {(d, m, t) for d, m, _, t in keys}
    assert pending <= stored  # nothing the agent spooled before the kill was lost
    with db(state) as conn:
        batch_samples = conn.execute("SELECT coalesce(sum(samples), 0) FROM batches").fetchone()[0]
        rollup_count = conn.execute("SELECT coalesce(sum(count), 0) FROM rollups WHERE resolution = 300").fetchone()[0]
        ups_values = {r[0] for r in conn.execute(
            "SELECT t.value FROM ts_samples t JOIN ts_series s ON s.id = t.series_id "
            "WHERE s.device = ? AND s.metric = 'ups.battery_charge_pct'", (UPS,))}
        ups_up = {r[0] for r in conn.execute(
            "SELECT t.value FROM ts_samples t JOIN ts_series s ON s.id = t.series_id "
            "WHERE s.device = ? AND s.metric = 'up'", (UPS,))}
    # every committed batch's samples are in the raw store once, and were rolled up once
    assert batch_samples == len(keys) == rollup_count
    assert ups_values == {charge}
    assert ups_up == {1.0}
    with db(spool) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM dead").fetchone()[0] == 0
    up = per_device(state, "up")
    assert all(up.get(d, 0) >= 5 for d in ICMP_DEVICES), up


def test_run_refuses_an_invalid_inventory(tmp_path: Path) -> None:
    bad = tmp_path / "inventory.yaml"
    bad.write_text("site: x\ndevices:\n  - {name: a, address: 127.0.0.2, kind: toaster, category: mis}\n")
    out = subprocess.run([*weibao_command(), "run", "--inventory", str(bad), "--data", str(tmp_path / "d"),
                          "--listen", f"127.0.0.1:{free_port()}", "--no-traps"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert "kind" in out.stderr and str(bad) in out.stderr
