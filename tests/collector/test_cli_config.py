"""The configuration file and the token commands, through the real ``weibao`` command."""

from __future__ import annotations

import hashlib
import re
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.collector.conftest import AGENT, batch, dump, registration, sample
from tests.peers.collector import REPO, free_port, wait_http, weibao
from weibao.collector.config import load_config
from weibao.core.errors import ConfigError


def test_unknown_key_is_named_with_its_line(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.yaml"
    cfg.write_text("listen: 127.0.0.1:9999\nlimits:\n  max_batch_bytez: 10\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    problem = info.value.problems[0]
    assert (problem.line, problem.key) == (3, "limits.max_batch_bytez")


def test_influx_backend_needs_its_section_and_listen_is_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tsdb:\n  backend: influxdb\n")
    with pytest.raises(ConfigError):
        load_config(cfg)
    with pytest.raises(ConfigError):
        load_config(None, data_dir=tmp_path, listen="nowhere")


def test_token_issue_revoke_list(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    first = weibao("token", "issue", "site-x", "--data", data)
    token = first.stdout.strip()
    assert token.startswith("wb_") and len(token) > 30
    assert token not in first.stderr
    twice = weibao("token", "issue", "site-x", "--data", data, check=False)
    assert twice.returncode == 2
    assert "already holds an active token" in twice.stderr
    weibao("token", "issue", "alice", "--role", "engineer", "--data", data)
    listing = weibao("token", "list", "--data", data).stdout
    assert "site-x\tagent" in listing and "alice\tengineer" in listing
    assert token not in listing
    weibao("token", "revoke", "site-x", "--data", data)
    assert "revoked" in weibao("token", "list", "--data", data).stdout
    assert weibao("token", "revoke", "site-x", "--data", data, check=False).returncode == 2
    again = weibao("token", "issue", "site-x", "--data", data).stdout.strip()
    assert again != token


def _every_value(db: Path) -> list[tuple[str, object]]:
    """(table, value) of every column of every row of every table in a SQLite file."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [(t, v) for t in tables
                for row in conn.execute(f'SELECT * FROM "{t}"')  # noqa: S608  # names from sqlite_master
                for v in row]
    finally:
        conn.close()


def test_tokens_are_stored_only_as_their_sha256(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = weibao("token", "issue", "site-x", "--data", str(data)).stdout.strip()
    assert token
    values = _every_value(data / "state.db")
    assert values
    leaks = [t for t, v in values
             if (isinstance(v, str) and token in v) or (isinstance(v, bytes) and token.encode() in v)]
    assert leaks == [], f"the token's text is stored in {leaks}"
    conn = sqlite3.connect(data / "state.db")
    try:
        (stored,), = conn.execute("SELECT token_hash FROM tokens WHERE name = 'site-x'").fetchall()
    finally:
        conn.close()
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert stored == hashlib.sha256(token.encode()).hexdigest()


def test_collector_started_as_documented_takes_a_token_from_token_issue(tmp_path: Path) -> None:
    """``weibao collector --data DIR --listen HOST:PORT`` with no configuration file, and a token from
    ``weibao token issue NAME --data DIR`` issued while it runs."""
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "collector.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "weibao", "collector", "--data", str(data),
                                 "--listen", f"127.0.0.1:{port}"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            wait_http(f"{url}/healthz", proc)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{log.read_text(errors='replace')}") from exc
        assert httpx.get(f"{url}/healthz", timeout=5).json()["status"] == "ok"
        assert (data / "state.db").exists()
        token = weibao("token", "issue", AGENT, "--data", str(data)).stdout.strip()
        auth = {"Authorization": f"Bearer {token}"}
        r = httpx.put(f"{url}/api/v1/inventory", json=registration(), headers=auth, timeout=10)
        assert r.status_code == 200, r.text
        ts = datetime.now(UTC).replace(microsecond=0)
        doc = batch([sample("core-sw-1", "up", 1.0, ts), sample("ups-1", "up", 0.0, ts)])
        r = httpx.post(f"{url}/api/v1/ingest", content=dump(doc), headers=auth, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json() == {"batch_id": doc["batch_id"], "duplicate": False, "samples": 2, "events": 0}
        bad = httpx.post(f"{url}/api/v1/ingest", content=dump(batch([])), timeout=10,
                         headers={"Authorization": "Bearer wb_not-a-token"})
        assert bad.status_code == 401
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells why it stopped
        assert proc.wait(15) in (0, -signal.SIGTERM), log.read_text(errors="replace")
    conn = sqlite3.connect(data / "state.db")
    try:
        rows = conn.execute("SELECT s.device, t.value, t.ts_ms FROM ts_samples t "
                            "JOIN ts_series s ON s.id = t.series_id ORDER BY s.device").fetchall()
    finally:
        conn.close()
    ms = int(ts.timestamp() * 1000)
    assert rows == [("core-sw-1", 1.0, ms), ("ups-1", 0.0, ms)]
