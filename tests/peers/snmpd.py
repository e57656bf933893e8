"""net-snmp's snmpd on a loopback port, with v1/v2c communities and SNMPv3 users, for tests and the benchmark."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SNMPD = "/usr/sbin/snmpd"
SNMPGET = "/usr/bin/snmpget"

COMMUNITY = "weibao-ro"


@dataclass(frozen=True)
class V3User:
    name: str
    auth: str | None  # net-snmp spelling: SHA, SHA-256, SHA-512; None: noAuthNoPriv
    auth_key: str | None
    priv: str | None = None  # AES (=AES-128), AES-256
    priv_key: str | None = None


# users every test snmpd knows; keys are throwaway test secrets
V3_USERS = (
    V3User("noauth", None, None),
    V3User("auth256", "SHA-256", "authpass-256"),
    V3User("auth512", "SHA-512", "authpass-512"),
    V3User("authsha", "SHA", "authpass-sha"),
    V3User("priv256aes128", "SHA-256", "authpass-256", "AES", "privpass-128"),
    V3User("priv512aes256", "SHA-512", "authpass-512", "AES-256", "privpass-256"),
    V3User("privshaaes256", "SHA", "authpass-sha", "AES-256", "privpass-256"),
)


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Snmpd:
    port: int
    conf: Path
    persist: Path
    bind: str
    proc: subprocess.Popen[bytes] | None = None
    community: str = COMMUNITY
    users: tuple[V3User, ...] = V3_USERS
    log: list[str] = field(default_factory=list)

    def start(self, timeout_s: float = 10.0) -> None:
        env = {**os.environ, "MIBS": ""}
        self.proc = subprocess.Popen(
            [SNMPD, "-f", "-Lo", "-C", "-c", str(self.conf), f"--persistentDir={self.persist}", self.bind],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"snmpd exited with {self.proc.returncode}")
            if self.snmpget("1.3.6.1.2.1.1.3.0", timeout_s=0.5) is not None:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("snmpd did not answer in time")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def snmpget(self, oid: str, *, host: str = "127.0.0.1", timeout_s: float = 2.0,
                auth: list[str] | None = None) -> str | None:
        """The value snmpget reads (``-Oqv``), or None when it gets no answer; ``auth`` replaces v2c options."""
        try:
            out = subprocess.run(
                [SNMPGET, *(auth or ["-v2c", "-c", self.community]), "-On", "-Oqv", "-Ot", "-t", str(timeout_s),
                 "-r", "1", f"udp:{host}:{self.port}", oid],
                env={**os.environ, "MIBS": ""}, capture_output=True, text=True, timeout=timeout_s + 5)
        except subprocess.TimeoutExpired:
            return None
        if out.returncode != 0:
            return None
        return out.stdout.strip()


def write_conf(path: Path, *, community: str = COMMUNITY, users: tuple[V3User, ...] = V3_USERS,
               sys_name: str = "weibao-test-snmpd", extra: str = "") -> None:
    lines = [
        f"rocommunity {community} default",
        f"sysName {sys_name}",
        "sysLocation weibao test rack",
        "sysContact noc@example.invalid",
        # Debian's default config restricts the view; we want the whole tree
        "view all included .1",
    ]
    for u in users:
        if u.auth is None:
            lines.append(f"createUser {u.name}")
            lines.append(f"rouser {u.name} noauth")
            continue
        create = f"createUser {u.name} {u.auth} {u.auth_key}"
        if u.priv:
            create += f" {u.priv} {u.priv_key}"
        lines.append(create)
        lines.append(f"rouser {u.name} {'priv' if u.priv else 'auth'}")
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")


@contextmanager
def running_snmpd(*, bind_all: bool = False, extra: str = "") -> Iterator[Snmpd]:
    """An snmpd on a spare UDP port; ``bind_all`` answers on every 127.x.y.z (one process, many devices)."""
    if not Path(SNMPD).exists():
        pytest.skip(f"{SNMPD} is not installed (apt-get install snmpd)")
    tmp = Path(tempfile.mkdtemp(prefix="weibao-snmpd-"))
    try:
        port = free_udp_port()
        conf = tmp / "snmpd.conf"
        write_conf(conf, extra=extra)
        persist = tmp / "persist"
        persist.mkdir()
        bind = f"udp:{port}" if bind_all else f"udp:127.0.0.1:{port}"
        d = Snmpd(port=port, conf=conf, persist=persist, bind=bind)
        d.start()
        try:
            yield d
        finally:
            d.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def snmpd() -> Iterator[Snmpd]:
    with running_snmpd() as d:
        yield d
