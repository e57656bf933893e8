"""Shared helpers for the SSH poller tests: devices, a silent TCP listener, running a poll."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from weibao.agent.inventory.model import Device, SshCredential, SshSettings
from weibao.agent.pollers.ssh import SshPoller
from weibao.core.model import PollResult


def make_device(
    name: str,
    port: int,
    *,
    username: str,
    password: str | None = None,
    key_file: Path | str | None = None,
    key_passphrase: str | None = None,
    platform: str = "linux",
    timeout_s: float = 10.0,
    known_hosts: Path | None = None,
    accept_new: bool = False,
) -> Device:
    cred = SshCredential(
        type="ssh",
        username=username,
        password=SecretStr(password) if password is not None else None,
        key_file=Path(key_file) if key_file is not None else None,
        key_passphrase=SecretStr(key_passphrase) if key_passphrase is not None else None,
    )
    settings: dict[str, Any] = {"credential_name": "test", "credential": cred, "port": port, "platform": platform,
                                "timeout_s": timeout_s, "accept_new_host_keys": accept_new}
    if known_hosts is not None:
        settings["known_hosts"] = known_hosts
    return Device(name=name, address="127.0.0.1", kind="server" if platform == "linux" else "switch",
                  category="business", ssh=SshSettings(**settings))


def poll(poller: SshPoller, device: Device) -> PollResult:
    return asyncio.run(poller.poll(device))


def metric(result: PollResult, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in result.samples if s.metric == name}


def value(result: PollResult, name: str) -> float:
    values = metric(result, name)
    assert len(values) == 1, (name, values)
    return next(iter(values.values()))


class Blackhole:
    """A TCP listener that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self.held:
            conn.close()
        self.sock.close()
