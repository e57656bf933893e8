"""A real collector with console users, devices and a fault ticket, and helpers to log in over HTTP or in
Debian's Chromium (Playwright, no browser download)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.peers.collector import REPO, CollectorPeer, run_collector

AGENT = "site-console"
PROBE_S = 60
CHROMIUM = "/usr/bin/chromium"
# flags that keep Chromium from calling out on a machine without internet (it would try at every start)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
XSS = "<script>window.__xss=1</script>"
PASSWORDS = {"root": "admin-pass-0001", "wang": "engineer-pass-01", "li": "engineer-pass-02",
             "client1": "client-pass-0001", "lockme": "lockme-pass-001"}
ROLES = {"root": "admin", "wang": "engineer", "li": "engineer", "client1": "client", "lockme": "engineer"}
CONFIG = {"contract": {"sweep_interval_s": 0.5},
          "console": {"refresh_s": 1, "login": {"account_failures": 3, "address_failures": 50, "lockout_s": 120}}}


@dataclass
class Site:
    peer: CollectorPeer
    workdir: Path
    agent_token: str
    engineer_token: str
    t0: datetime

    def send(self, samples: list[dict[str, Any]]) -> None:
        with self.peer.client(self.agent_token) as c:
            r = c.post("/api/v1/ingest", json={"batch_id": str(uuid.uuid4()), "agent": AGENT,
                                               "samples": samples, "events": []})
        assert r.status_code == 200, r.text

    def api(self) -> httpx.Client:
        return self.peer.client(self.engineer_token)

    def tickets(self, **params: str) -> list[dict[str, Any]]:
        with self.api() as c:
            r = c.get("/api/v1/tickets", params=params)
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["tickets"]
        return found


def registration() -> dict[str, Any]:
    def dev(name: str, kind: str, depends_on: str | None = None, **asset: str) -> dict[str, Any]:
        return {"name": name, "address": "127.0.0.1", "kind": kind, "category": "backbone",
                "depends_on": depends_on, "schedule": {"icmp_s": PROBE_S}, "asset": asset}
    return {"site": "lab", "agent": AGENT, "devices": [
        dev("core-sw-1", "switch", vendor="Huawei", model="S5720", notes=XSS),
        dev("acc-sw-1", "switch", "core-sw-1"), dev("ups-1", "ups"), dev("srv-1", "server")]}


def up(device: str, value: float, ts: datetime) -> dict[str, Any]:
    return {"device": device, "metric": "up", "value": value, "ts": ts.isoformat()}


def weibao(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "weibao", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, input=stdin, check=True)


def wait_until(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = pred()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("console")
    with run_collector(work, CONFIG) as peer:
        agent, eng = peer.token(AGENT), peer.token("api-eng", "engineer")
        with peer.client(agent) as c:
            assert c.put("/api/v1/inventory", json=registration()).status_code == 200
        for name, password in PASSWORDS.items():
            weibao("user", "add", name, "--role", ROLES[name], "--password-stdin", "--config",
                   str(peer.config_path), stdin=password + "\n")
        # twenty minutes of history: every device up, then core-sw-1 (and acc-sw-1 behind it) down
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=PROBE_S * 20)
        s = Site(peer, work, agent, eng, t0)
        samples = []
        for i in range(20):
            ts = t0 + timedelta(seconds=PROBE_S * i)
            down = i >= 17
            samples += [up("core-sw-1", 0 if down else 1, ts), up("acc-sw-1", 0 if down else 1, ts),
                        up("ups-1", 1, ts), up("srv-1", 1, ts),
                        {"device": "srv-1", "metric": "cpu.util_pct", "value": 10.0 + i, "ts": ts.isoformat()}]
        s.send(samples)
        wait_until(lambda: [t for t in s.tickets() if t["device"] == "core-sw-1"], 20, "the core switch's ticket")
        yield s


def login(site: Site, name: str, password: str | None = None, *, cookies: dict[str, str] | None = None,
          follow: bool = False) -> tuple[httpx.Client, httpx.Response]:
    """A client that went through the login form; returns it with the login POST's answer."""
    c = httpx.Client(base_url=site.peer.url, timeout=30, follow_redirects=follow, cookies=cookies)
    form = c.get("/login")
    assert form.status_code == 200, form.text
    pre = re.search(r'name="pre" value="([^"]+)"', form.text)
    assert pre is not None
    r = c.post("/login", data={"pre": pre.group(1), "name": name,
                               "password": PASSWORDS[name] if password is None else password, "next": "/"})
    return c, r


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture(scope="package")
def artefacts() -> Path:
    """Screenshots land here (ignored by git), so a person can look at what the tests saw."""
    out = REPO / "test-artifacts" / "console"
    out.mkdir(parents=True, exist_ok=True)
    return out
