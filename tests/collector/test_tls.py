"""HTTPS between agents and the collector (issue item 1), with a CA made in the test.

The real collector serves https:// with a certificate from the test CA; the real agent verifies it with
``--ca-file`` and ships; a certificate from another CA is refused by the agent (nothing arrives); an
expired certificate is refused by the collector at start and, as a client certificate, in the handshake.
Mutual TLS: an agent's token counts only with a client certificate naming that agent (403 otherwise).
The agent refuses to send its token over http:// beyond loopback unless told --allow-insecure-http.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent.test_daemon import AGENT, agent_for, stored, wait_for
from tests.collector.conftest import batch, registration, sample
from tests.peers.collector import REPO, CollectorPeer, free_port, run_collector
from tests.peers.pki import Pair, Pki
from weibao.core.errors import ConfigError
from weibao.core.transport import check_collector_url, is_loopback

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("other-pki"), name="another CA")


def tls_section(server: Pair, **extra: Any) -> dict[str, Any]:
    return {"tls": {"cert_file": str(server.cert), "key_file": str(server.key), **extra}}


@pytest.fixture
def https_collector(pki: Pki, tmp_path: Path) -> Iterator[CollectorPeer]:
    (tmp_path / "collector").mkdir()
    with run_collector(tmp_path / "collector", tls_section(pki.server()), verify=pki.context()) as peer:
        yield peer


def test_agent_ships_over_https_verified_with_the_ca_file(https_collector: CollectorPeer, pki: Pki,
                                                          tmp_path: Path) -> None:
    assert https_collector.url.startswith("https://127.0.0.1:")
    with agent_for(https_collector, tmp_path, "--ca-file", str(pki.ca_file), addresses=("127.0.0.1",)) as agent:
        wait_for("samples over https", lambda: len(stored(https_collector)) >= 6, timeout=30)
        assert agent.stop() == 0
    assert "CERTIFICATE_VERIFY_FAILED" not in agent.log()
    # the port speaks TLS only: a request in clear is not served
    with pytest.raises(httpx.HTTPError):
        httpx.get(https_collector.url.replace("https://", "http://") + "/healthz", timeout=5).raise_for_status()


def test_agent_refuses_a_certificate_from_another_ca(https_collector: CollectorPeer, other_ca: Pki,
                                                     tmp_path: Path) -> None:
    before = len(stored(https_collector))
    with agent_for(https_collector, tmp_path, "--ca-file", str(other_ca.ca_file),
                   addresses=("127.0.0.1",)) as agent:
        wait_for("a refused shipment", lambda: "not trusted" in agent.log(), timeout=30)
        time.sleep(1.5)
        assert agent.stats().rows > 0  # kept in the spool, not sent
        assert agent.stop() == 0
    assert len(stored(https_collector)) == before
    assert "CERTIFICATE_VERIFY_FAILED" in agent.log()
    assert " ERROR " in agent.log()  # a person must act: logged as an error


def test_collector_refuses_to_start_with_an_expired_certificate(pki: Pki, tmp_path: Path) -> None:
    expired = pki.server("expired", days=-2)
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(json.dumps({"data_dir": str(tmp_path / "data"), "listen": f"127.0.0.1:{free_port()}",
                               **tls_section(expired)}))
    out = subprocess.run([sys.executable, "-m", "weibao", "collector", "--config", str(cfg)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "tls.cert_file" in out.stderr and "expired on" in out.stderr


@pytest.fixture(scope="module")
def mtls_collector(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPeer]:
    work = tmp_path_factory.mktemp("mtls")
    health = pki.client("health-check")
    with run_collector(work, tls_section(pki.server("mtls-server"), client_ca_file=str(pki.ca_file)),
                       verify=pki.context(health)) as peer:
        yield peer


def _ingest(peer: CollectorPeer, ctx: ssl.SSLContext, token: str, agent: str = AGENT) -> httpx.Response:
    with httpx.Client(base_url=peer.url, verify=ctx, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as c:
        return c.post("/api/v1/ingest", json=batch([], agent=agent))


def test_mutual_tls_binds_the_agent_token_to_its_certificate(mtls_collector: CollectorPeer, pki: Pki,
                                                             other_ca: Pki) -> None:
    token = mtls_collector.token(AGENT)
    right = pki.context(pki.client(AGENT))
    with httpx.Client(base_url=mtls_collector.url, verify=right, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.put("/api/v1/inventory", json=registration(agent=AGENT, devices=("m-sw-1",))).status_code == 200
        ok = c.post("/api/v1/ingest", json=batch([sample("m-sw-1", "up", 1.0, _now())], agent=AGENT))
        assert ok.status_code == 200, ok.text
    # a certificate of the same CA naming another agent: the token is refused on this connection
    wrong = _ingest(mtls_collector, pki.context(pki.client("site-z")), token)
    assert wrong.status_code == 403
    assert wrong.json()["reason"] == "certificate_mismatch"
    assert token not in wrong.text
    # no certificate, one from another CA, an expired one: no TLS session at all
    for ctx in (pki.context(), pki.context(other_ca.client(AGENT, "foreign")),
                pki.context(pki.client(AGENT, "expired-client", days=-2))):
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            _ingest(mtls_collector, ctx, token)
    text = httpx.get(f"{mtls_collector.url}/metrics", verify=pki.context(pki.client("scraper")), timeout=10).text
    assert 'weibao_ingest_refused_total{reason="certificate_mismatch"} 1' in text
    tls_failed = next(line for line in text.splitlines() if 'event="tls_failed"' in line)
    assert int(tls_failed.split()[-1]) >= 3


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.mark.parametrize(("url", "allowed"), [
    ("http://127.0.0.1:8470", True), ("http://127.9.9.9:8470", True), ("http://[::1]:8470", True),
    ("http://localhost:8470", True), ("http://[::ffff:127.0.0.1]:8470", True),
    ("https://collector.example:8470", True), ("http://collector.example:8470", False),
    ("http://10.1.2.3:8470", False), ("http://0.0.0.0:8470", False), ("ftp://127.0.0.1/", False),
])
def test_which_urls_may_carry_a_token_in_clear(url: str, allowed: bool) -> None:
    assert is_loopback("127.0.0.1") and not is_loopback("collector.example")
    if allowed:
        assert check_collector_url(url) == url
    else:
        with pytest.raises(ConfigError):
            check_collector_url(url)
    assert check_collector_url("http://10.1.2.3:8470", allow_insecure_http=True)


def test_agent_refuses_plain_http_beyond_loopback_unless_allowed(tmp_path: Path) -> None:
    """0.0.0.0 is not a loopback address by its form, yet connecting to it stays on this machine: the
    refusal is seen without sending anything anywhere else."""
    (tmp_path / "c").mkdir()
    with run_collector(tmp_path / "c") as peer:
        remote = peer.url.replace("127.0.0.1", "0.0.0.0")
        peer.url = remote
        (tmp_path / "a1").mkdir()
        with agent_for(peer, tmp_path / "a1") as agent:
            assert agent.proc is not None
            assert agent.proc.wait(30) == 2
        assert "refusing to send the token in clear" in agent.log()
        assert len(stored(peer)) == 0
        (tmp_path / "a2").mkdir()
        peer.revoke(AGENT)
        with agent_for(peer, tmp_path / "a2", "--allow-insecure-http", addresses=("127.0.0.1",)) as agent:
            wait_for("samples over plain http when allowed", lambda: len(stored(peer)) >= 3, timeout=30)
            assert agent.stop() == 0


def test_check_validates_the_certificate_files(pki: Pki, other_ca: Pki, tmp_path: Path) -> None:
    good = pki.server("check-good")
    soon = pki.server("check-soon", days=10)
    mismatch = Pair(good.cert, pki.server("check-other").key)
    expired = pki.server("check-expired", days=-1)
    loose = pki.server("check-loose")
    loose.key.chmod(0o644)

    def check(pair: Pair, **extra: Any) -> subprocess.CompletedProcess[str]:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(json.dumps({"data_dir": str(tmp_path / "d"), **tls_section(pair, **extra)}))
        return subprocess.run([sys.executable, "-m", "weibao", "collector", "--check", "--config", str(cfg)],
                              cwd=REPO, capture_output=True, text=True, timeout=60)

    ok = check(good, client_ca_file=str(pki.ca_file))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "TLS certificate and key and client CA" in ok.stdout
    warned = check(soon)
    assert warned.returncode == 0 and "warning:" in warned.stderr and "expires on" in warned.stderr
    wrong_key = check(mismatch)
    assert wrong_key.returncode == 1 and "is not the key of the certificate" in wrong_key.stdout
    old = check(expired)
    assert old.returncode == 1 and "expired on" in old.stdout
    open_key = check(loose)
    assert open_key.returncode == 1 and "readable by anyone" in open_key.stdout
    missing = check(Pair(tmp_path / "nope.crt", good.key))
    assert missing.returncode == 1 and "cannot read" in missing.stdout
    # and the same with the flags instead of the file
    flags = subprocess.run([sys.executable, "-m", "weibao", "collector", "--check", "--data", str(tmp_path / "d"),
                            "--tls-cert", str(expired.cert), "--tls-key", str(expired.key)],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert flags.returncode == 1 and "expired on" in flags.stdout


def test_tls_init_makes_a_site_ca_the_collector_and_agents_use(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "weibao", "tls", "init", "--dir", str(tmp_path / "pki"),
                          "--name", "localhost", "--ip", "127.0.0.1", "--agent", AGENT], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    d = tmp_path / "pki"
    for key in (d / "ca.key", d / "collector.key", d / "agents" / f"{AGENT}.key"):
        assert key.stat().st_mode & 0o077 == 0
    again = subprocess.run([sys.executable, "-m", "weibao", "tls", "init", "--dir", str(d), "--name", "x"],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "not overwritten" in again.stderr
    client = Pair(d / "agents" / f"{AGENT}.crt", d / "agents" / f"{AGENT}.key")
    ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
    ctx.load_cert_chain(str(client.cert), str(client.key))
    cfg = {"tls": {"cert_file": str(d / "collector.crt"), "key_file": str(d / "collector.key"),
                   "client_ca_file": str(d / "ca.crt")}}
    (tmp_path / "c").mkdir()
    with run_collector(tmp_path / "c", cfg, verify=ctx) as peer:
        token = peer.token(AGENT)
        r = httpx.put(f"{peer.url}/api/v1/inventory", json=registration(agent=AGENT, devices=("i-sw-1",)),
                      headers={"Authorization": f"Bearer {token}"}, verify=ctx, timeout=30)
        assert r.status_code == 200, r.text


def test_handshake_that_never_starts_is_closed(https_collector: CollectorPeer) -> None:
    """A TCP connection that sends nothing to the TLS port is closed after the header timeout (10 s)."""
    port = int(https_collector.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        started = time.monotonic()
        assert s.recv(1) == b""
        assert 8 < time.monotonic() - started < 15
