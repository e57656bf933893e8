"""A second OpenSSH sshd on a loopback port, with its own host keys and config in a temp dir, and a test user."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
TEST_USER = "weibao-sshtest"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_banner(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no SSH banner on 127.0.0.1:{port} after {timeout} s")


def keygen(path: Path, kind: str = "ed25519", passphrase: str = "") -> Path:
    subprocess.run([SSH_KEYGEN, "-q", "-t", kind, "-N", passphrase, "-C", "weibao-test", "-f", str(path)],
                   check=True)
    return path


@dataclass
class SshUser:
    name: str
    password: str
    home: Path
    key_file: Path  # private key (no passphrase) whose public half is in authorized_keys
    protected_key_file: Path  # private key with ``key_passphrase``
    key_passphrase: str


def ensure_user(workdir: Path) -> SshUser:
    """Create (once) the dedicated test user; set a fresh password and fresh authorized keys every time."""
    try:
        pw = pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", TEST_USER], check=True)
        pw = pwd.getpwnam(TEST_USER)
    password = "Pw-" + secrets.token_urlsafe(12)
    subprocess.run(["chpasswd"], input=f"{TEST_USER}:{password}\n", text=True, check=True)
    home = Path(pw.pw_dir)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    key = keygen(workdir / "user_ed25519")
    passphrase = "Kp-" + secrets.token_urlsafe(10)
    protected = keygen(workdir / "user_protected_ed25519", passphrase=passphrase)
    auth = ssh_dir / "authorized_keys"
    auth.write_text(Path(f"{key}.pub").read_text() + Path(f"{protected}.pub").read_text())
    for p in (ssh_dir, auth):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    auth.chmod(0o600)
    ssh_dir.chmod(0o700)
    return SshUser(TEST_USER, password, home, key, protected, passphrase)


@dataclass
class Sshd:
    """One sshd process; ``host_key_files`` decide which keys it offers."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    host_key_files: list[Path] = field(default_factory=list)

    def generate_host_keys(self, tag: str = "a") -> None:
        self.host_key_files = [keygen(self.workdir / f"host_{tag}_ed25519")]

    def public_host_key(self) -> str:
        """'type base64' of the offered host key."""
        parts = Path(f"{self.host_key_files[0]}.pub").read_text().split()
        return f"{parts[0]} {parts[1]}"

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.public_host_key()}\n"

    def start(self) -> None:
        if not self.host_key_files:
            self.generate_host_keys()
        conf = self.workdir / "sshd_config"
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            *(f"HostKey {k}" for k in self.host_key_files),
            f"PidFile {self.workdir / 'sshd.pid'}",
            "UsePAM yes",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "StrictModes yes",
            "PermitRootLogin no",
            f"AllowUsers {TEST_USER}",
            "MaxAuthTries 3",
            "LoginGraceTime 20",
            "LogLevel VERBOSE",
        ]
        conf.write_text("\n".join(lines) + "\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.workdir / "sshd.log", "ab"))  # noqa: SIM115
        try:
            wait_for_banner(self.port)
        except RuntimeError:
            self.stop()
            raise RuntimeError("sshd did not start: " + (self.workdir / "sshd.log").read_text()[-2000:]) from None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None

    def restart_with_new_keys(self, tag: str) -> None:
        """Same port, different host key: what a replaced (or impersonated) device looks like."""
        self.stop()
        self.generate_host_keys(tag)
        self.start()
