"""Nothing an agent or another engineer sends reaches a terminal raw (issue item 9).

Device names with NUL, BEL or ESC are refused by the API (test_strict_wire); what stays free text
(ticket notes, maintenance reasons, the collector's own error messages echoing a request) is printed
by ``weibao tickets`` and ``weibao maintenance`` with every control character escaped, in tables, in
``show`` and in ``--json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.collector.conftest import AGENT, registration
from tests.peers.collector import REPO, CollectorPeer, run_collector

pytestmark = pytest.mark.timeout(120)

# every control character a terminal acts on but NUL, which no text may hold (refused at the door)
EVIL = "ok\x1b]0;owned\x07\x1b[2J\x01\x9b31m\u202eevil\x7f"
RAW = ("\x1b", "\x07", "\x01", "\x9b", "\u202e", "\x7f")


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPeer]:
    with run_collector(tmp_path_factory.mktemp("term"), {"contract": {"sweep_interval_s": 0.5}}) as p:
        yield p


@pytest.fixture(scope="module")
def token_file(peer: CollectorPeer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "eng.token"
    path.write_text(peer.token("eng-li", "engineer") + "\n")
    path.chmod(0o600)
    return path


def cli(peer: CollectorPeer, token_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "weibao", *args, "--collector", peer.url, "--token-file",
                           str(token_file)], cwd=REPO, capture_output=True, text=True, timeout=60)


def assert_no_raw(text: str) -> None:
    found = [repr(c) for c in RAW if c in text]
    assert not found, f"raw control characters printed: {found}"


def test_notes_reasons_and_echoed_requests_are_escaped(peer: CollectorPeer, token_file: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with peer.client(peer.token(AGENT)) as agent, peer.client(token_file.read_text().strip()) as eng:
        assert agent.put("/api/v1/inventory", json=registration()).status_code == 200
        samples = [{"device": "core-sw-1", "metric": "up", "value": v, "ts": (now - timedelta(minutes=m)).isoformat()}
                   for m, v in ((3, 1.0), (2, 1.0), (0, 0.0))]
        r = agent.post("/api/v1/ingest", json={"batch_id": str(uuid.uuid4()), "agent": AGENT, "samples": samples})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 10
        tickets: list[dict[str, str]] = []
        while not tickets and time.monotonic() < deadline:
            tickets = eng.get("/api/v1/tickets").json()["tickets"]
            time.sleep(0.1)
        tid = tickets[0]["id"]
        assert eng.post(f"/api/v1/tickets/{tid}/comment", json={"note": EVIL}).status_code == 200
        assert eng.post(f"/api/v1/tickets/{tid}/comment", json={"note": EVIL + "\x00"}).status_code == 422
        window = {"devices": ["acc-sw-1"], "start": (now + timedelta(hours=1)).isoformat(),
                  "end": (now + timedelta(hours=2)).isoformat(), "reason": EVIL}
        assert eng.post("/api/v1/maintenance", json=window).status_code == 201
        bad_device = eng.post("/api/v1/maintenance", json={**window, "devices": ["sw\x1b[2J"]})
        assert bad_device.status_code == 422
    runs = {"show": cli(peer, token_file, "tickets", "show", tid),
            "show --json": cli(peer, token_file, "tickets", "show", tid, "--json"),
            "list": cli(peer, token_file, "tickets", "list"),
            "maintenance": cli(peer, token_file, "maintenance", "list"),
            "maintenance --json": cli(peer, token_file, "maintenance", "list", "--json"),
            "echoed": cli(peer, token_file, "tickets", "show", "no\x1b[2Jsuch")}
    for name, out in runs.items():
        assert_no_raw(out.stdout + out.stderr)
        assert out.returncode == (1 if name == "echoed" else 0), (name, out.stderr)
    assert "ok\\x1b]0;owned\\x07\\x1b[2J\\x01\\x9b31m\\u202eevil\\x7f" in runs["show"].stdout
    assert "\\u001b]0;owned" in runs["show --json"].stdout and "\\u202eevil" in runs["show --json"].stdout
    shown = json.loads(runs["show --json"].stdout)  # still JSON, with the note as it was written
    assert shown["events"][-1]["note"] == EVIL
    assert json.loads(runs["maintenance --json"].stdout)["windows"][0]["reason"] == EVIL
    assert "\\x1b[2J" in runs["maintenance"].stdout
    assert "no\\x1b[2Jsuch" in runs["echoed"].stderr
