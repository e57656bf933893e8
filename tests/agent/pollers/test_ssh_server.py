"""SshPoller against a real OpenSSH sshd on loopback: server figures, credentials, host keys, failures."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.pollers.ssh_fixtures import Blackhole, make_device, metric, poll, value
from tests.peers.sshd import SSHD, Sshd, SshUser, ensure_user, free_port
from weibao.agent.pollers.ssh import SshPoller
from weibao.agent.state import StateStore
from weibao.core.model import EventKind, Protocol

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not SSHD.exists(), reason="OpenSSH server (/usr/sbin/sshd) is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="creating the sshd test user needs root"),
]

SKIPPED_TYPES = {"tmpfs", "devtmpfs", "overlay", "squashfs"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sshd")


@pytest.fixture(scope="module")
def user(workdir: Path) -> SshUser:
    return ensure_user(workdir)


@pytest.fixture(scope="module")
def sshd(workdir: Path, user: SshUser) -> Iterator[Sshd]:
    server = Sshd(workdir / "main")
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def known_hosts(tmp_path: Path, sshd: Sshd) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(sshd.known_hosts_line())
    return path


@pytest.fixture
def poller(tmp_path: Path) -> Iterator[SshPoller]:
    p = SshPoller(StateStore(), tmp_path / "configs")
    yield p
    p.close()


def fingerprint(pub_file: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub_file)],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def local_df() -> dict[str, float]:
    out = subprocess.run(["df", "-P", "-k", "-T"], capture_output=True, text=True, check=True,
                         env={**os.environ, "LC_ALL": "C"}).stdout.splitlines()[1:]
    pct: dict[str, float] = {}
    for line in out:
        f = line.split()
        if f[1] in SKIPPED_TYPES:
            continue
        used, avail = int(f[3]), int(f[4])
        pct[" ".join(f[6:])] = 100.0 * used / (used + avail) if used + avail else 0.0
    return pct


def test_password_login_reads_what_proc_and_df_say(sshd: Sshd, user: SshUser, known_hosts: Path,
                                                  poller: SshPoller) -> None:
    dev = make_device("srv-pw", sshd.port, username=user.name, password=user.password, known_hosts=known_hosts)
    before = float(Path("/proc/uptime").read_text().split()[0])
    result = poll(poller, dev)
    after = float(Path("/proc/uptime").read_text().split()[0])
    assert result.ok, result.errors
    assert result.protocol == Protocol.SSH
    assert value(result, "ssh.up") == 1.0
    assert before - 1 <= value(result, "sys.uptime_s") <= after + 1

    meminfo = {ln.split(":")[0]: int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()}
    expected_mem = 100.0 * (meminfo["MemTotal"] - meminfo["MemAvailable"]) / meminfo["MemTotal"]
    assert value(result, "mem.util_pct") == pytest.approx(expected_mem, abs=3.0)

    load = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    for name, expected in zip(("sys.load1", "sys.load5", "sys.load15"), load, strict=True):
        assert value(result, name) == pytest.approx(expected, abs=1.0)

    disks = {dict(k)["mount"]: v for k, v in metric(result, "disk.util_pct").items()}
    expected_disks = local_df()
    assert set(disks) == set(expected_disks)
    for mount, pct in expected_disks.items():
        assert disks[mount] == pytest.approx(pct, abs=0.5), mount


def test_systemd_absent_is_not_an_error(sshd: Sshd, user: SshUser, known_hosts: Path, poller: SshPoller) -> None:
    booted_with_systemd = Path("/run/systemd/system").is_dir()
    dev = make_device("srv-sd", sshd.port, username=user.name, password=user.password, known_hosts=known_hosts)
    result = poll(poller, dev)
    assert result.ok, result.errors
    if shutil.which("systemctl") is None or not booted_with_systemd:
        assert metric(result, "systemd.failed_units") == {}
        assert "systemd_failed_units" not in result.facts
    else:
        assert "systemd_failed_units" in result.facts


def test_key_login_with_and_without_passphrase(sshd: Sshd, user: SshUser, known_hosts: Path,
                                              poller: SshPoller, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # "~" in the key path is the agent's home
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    shutil.copy(user.key_file, home / "keys" / "id")
    monkeypatch.setenv("HOME", str(home))
    plain = make_device("srv-key", sshd.port, username=user.name, key_file="~/keys/id", known_hosts=known_hosts)
    result = poll(poller, plain)
    assert result.ok, result.errors
    assert value(result, "ssh.up") == 1.0

    protected = make_device("srv-key2", sshd.port, username=user.name, key_file=user.protected_key_file,
                            key_passphrase=user.key_passphrase, known_hosts=known_hosts)
    result = poll(poller, protected)
    assert result.ok, result.errors

    wrong = make_device("srv-key3", sshd.port, username=user.name, key_file=user.protected_key_file,
                        key_passphrase="not-the-passphrase-0", known_hosts=known_hosts)
    result = poll(poller, wrong)
    assert value(result, "ssh.up") == 0.0
    assert "not-the-passphrase-0" not in result.errors[0].message
    assert "key file" in result.errors[0].message


def test_default_known_hosts_is_in_home(sshd: Sshd, user: SshUser, poller: SshPoller, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    dev = make_device("srv-home", sshd.port, username=user.name, password=user.password, accept_new=True)
    result = poll(poller, dev)
    assert result.ok, result.errors
    path = tmp_path / ".ssh" / "known_hosts"
    assert path.read_text() == sshd.known_hosts_line()
    assert (path.stat().st_mode & 0o777) == 0o600
    assert (path.parent.stat().st_mode & 0o777) == 0o700


def test_unknown_host_key_is_refused_with_its_fingerprint(sshd: Sshd, user: SshUser, poller: SshPoller,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "kh"
    dev = make_device("srv-unknown", sshd.port, username=user.name, password=user.password, known_hosts=path)
    result = poll(poller, dev)
    assert value(result, "ssh.up") == 0.0
    message = result.errors[0].message
    assert "srv-unknown" in message
    assert fingerprint(Path(f"{sshd.host_key_files[0]}.pub")) in message
    assert "ssh-keyscan" in message and "accept_new_host_keys" in message
    assert not result.errors[0].retryable
    assert not path.exists()


def test_accept_new_adds_the_key_then_it_is_known(sshd: Sshd, user: SshUser, poller: SshPoller,
                                                  tmp_path: Path) -> None:
    path = tmp_path / "kh"
    path.write_text("# kept\n")
    dev = make_device("srv-tofu", sshd.port, username=user.name, password=user.password, known_hosts=path,
                      accept_new=True)
    result = poll(poller, dev)
    assert result.ok, result.errors
    assert path.read_text() == "# kept\n" + sshd.known_hosts_line()
    strict = make_device("srv-tofu", sshd.port, username=user.name, password=user.password, known_hosts=path)
    assert poll(poller, strict).ok
    assert path.read_text() == "# kept\n" + sshd.known_hosts_line()  # not added twice


def test_changed_host_key_is_always_refused(tmp_path: Path, user: SshUser, poller: SshPoller) -> None:
    (tmp_path / "peer").mkdir()
    server = Sshd(tmp_path / "peer")
    server.start()
    try:
        path = tmp_path / "kh"
        path.write_text(server.known_hosts_line())
        dev = make_device("srv-moved", server.port, username=user.name, password=user.password,
                          known_hosts=path, accept_new=True)
        assert poll(poller, dev).ok
        old_fp = fingerprint(Path(f"{server.host_key_files[0]}.pub"))
        server.restart_with_new_keys("b")
        new_fp = fingerprint(Path(f"{server.host_key_files[0]}.pub"))
        before = path.read_text()
        result = poll(poller, dev)
        assert value(result, "ssh.up") == 0.0
        message = result.errors[0].message
        assert "CHANGED" in message and new_fp in message and old_fp in message
        assert user.password not in message
        assert path.read_text() == before
    finally:
        server.stop()


def test_wrong_password(sshd: Sshd, user: SshUser, known_hosts: Path, poller: SshPoller) -> None:
    secret = "Wrong-" + user.password[::-1]
    dev = make_device("srv-badpw", sshd.port, username=user.name, password=secret, known_hosts=known_hosts)
    result = poll(poller, dev)
    assert value(result, "ssh.up") == 0.0
    assert len(result.errors) == 1
    err = result.errors[0]
    assert "authentication refused" in err.message and "srv-badpw" in err.message
    assert secret not in err.message and user.password not in err.message
    assert not err.retryable


def test_nothing_listening_fails_fast(poller: SshPoller, tmp_path: Path) -> None:
    dev = make_device("srv-off", free_port(), username="x", password="y-unused-1", known_hosts=tmp_path / "kh")
    started = time.monotonic()
    result = poll(poller, dev)
    assert time.monotonic() - started < 2.0
    assert value(result, "ssh.up") == 0.0
    assert "refused" in result.errors[0].message
    assert result.errors[0].retryable


def test_silent_listener_times_out_within_timeout(poller: SshPoller, tmp_path: Path) -> None:
    hole = Blackhole()
    try:
        dev = make_device("srv-hole", hole.port, username="x", password="y-unused-1",
                          known_hosts=tmp_path / "kh", timeout_s=2.0)
        started = time.monotonic()
        result = poll(poller, dev)
        elapsed = time.monotonic() - started
    finally:
        hole.close()
    assert elapsed < 2.0 + 1.0
    assert value(result, "ssh.up") == 0.0
    assert result.errors[0].retryable
    assert "2 s" in result.errors[0].message


def test_reboot_is_detected_from_the_previous_uptime(sshd: Sshd, user: SshUser, known_hosts: Path,
                                                     tmp_path: Path) -> None:
    state = StateStore()
    poller = SshPoller(state, None)
    try:
        dev = make_device("srv-boot", sshd.port, username=user.name, password=user.password,
                          known_hosts=known_hosts)
        first = poll(poller, dev)
        assert first.ok and first.events == []
        second = poll(poller, dev)
        assert second.events == []
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        state.put("srv-boot", "ssh.sys.uptime_s", uptime + 86400.0)  # as if the last round saw a day more
        third = poll(poller, dev)
        assert [e.kind for e in third.events] == [EventKind.REBOOTED]
        assert third.events[0].data["previous_uptime_s"] == uptime + 86400.0
    finally:
        poller.close()


_SESSION_START = re.compile(r"^Starting session: .* from 127\.0\.0\.1 port (\d+)\b")
_SESSION_END = re.compile(r"^(?:Close session|Read error|Disconnected|Connection closed|Received disconnect|"
                          r"Connection reset).* port (\d+)\b")


def peak_sessions(log_text: str) -> tuple[int, int]:
    """(most sessions open at once, sessions seen) from sshd's log, in the order sshd wrote it.

    A session counts from sshd starting its command (after login) to the first line saying its
    connection ended; raises if a session's end is not in the log yet.
    """
    open_ports: set[str] = set()
    seen = peak = 0
    for line in log_text.splitlines():
        if m := _SESSION_START.match(line):
            open_ports.add(m.group(1))
            seen += 1
            peak = max(peak, len(open_ports))
        elif (m := _SESSION_END.match(line)) and m.group(1) in open_ports:
            open_ports.discard(m.group(1))
    if open_ports:
        raise LookupError(f"sessions still open in the sshd log: {sorted(open_ports)}")
    return peak, seen


def test_poll_many_bounds_concurrency_and_keeps_order(sshd: Sshd, user: SshUser, known_hosts: Path,
                                                      tmp_path: Path) -> None:
    limit = 2
    poller = SshPoller(StateStore(), None, max_workers=limit)
    dead = free_port()
    # six devices that log in, two that refuse the connection, interleaved
    devices = [
        make_device(f"srv-{i}", dead if i % 4 == 3 else sshd.port, username=user.name, password=user.password,
                    known_hosts=known_hosts)
        for i in range(8)
    ]
    sshd_log = sshd.workdir / "sshd.log"
    before = sshd_log.stat().st_size
    try:
        results = asyncio.run(poller.poll_many(devices))
    finally:
        poller.close()
    assert [r.device for r in results] == [d.name for d in devices]
    assert [value(r, "ssh.up") for r in results] == [1.0, 1.0, 1.0, 0.0] * 2
    # what the server saw: sshd writes each session's start and end to its log as they happen
    end = time.monotonic() + 10
    while True:
        with sshd_log.open("rb") as f:
            f.seek(before)
            text = f.read().decode(errors="replace")
        try:
            peak, seen = peak_sessions(text)
            break
        except LookupError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)
    assert seen == 6
    assert 1 <= peak <= limit
