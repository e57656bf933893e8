"""The real collector as a peer: ``weibao collector`` under uvicorn in a subprocess on a spare loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 30.0,
              verify: ssl.SSLContext | bool = True) -> None:
    """Until ``url`` answers 2xx; fails early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0, verify=verify).is_success:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s ({last})")


def weibao(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``weibao`` command (this checkout's) and capture its output."""
    return subprocess.run([sys.executable, "-m", "weibao", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=check)


@dataclass
class CollectorPeer:
    url: str
    data_dir: Path
    config_path: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    verify: ssl.SSLContext | bool = True  # how clients of this peer check its certificate (https://)

    def token(self, name: str, role: str = "agent") -> str:
        out = weibao("token", "issue", name, "--role", role, "--config", str(self.config_path))
        return out.stdout.strip()

    def revoke(self, name: str) -> None:
        weibao("token", "revoke", name, "--config", str(self.config_path))

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60.0, verify=self.verify)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


@contextmanager
def run_collector(workdir: Path, config: dict[str, Any] | None = None, *, verify: ssl.SSLContext | bool = True,
                  preexec: Callable[[], None] | None = None) -> Iterator[CollectorPeer]:
    """Start the collector with ``config`` (YAML keys; data_dir and listen are filled in) and stop it after.

    With a ``tls`` section it serves https://, checked by clients with ``verify``; ``preexec`` runs in the
    collector's process before it starts (a umask, an open-file limit: never the test's own)."""
    port = free_port()
    data_dir = workdir / "data"
    cfg = {"data_dir": str(data_dir), "listen": f"127.0.0.1:{port}", **(config or {})}
    config_path = workdir / "collector.yaml"
    config_path.write_text(json.dumps(cfg))  # JSON is YAML
    log_path = workdir / "collector.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "weibao", "-v", "collector", "--config", str(config_path)],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec)
    scheme = "https" if cfg.get("tls") else "http"
    peer = CollectorPeer(f"{scheme}://127.0.0.1:{port}", data_dir, config_path, proc, log_path, verify)
    try:
        try:
            wait_http(f"{peer.url}/healthz", proc, verify=verify)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{peer.log()}") from exc
        yield peer
    finally:
        peer.stop()
