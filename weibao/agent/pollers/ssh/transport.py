"""SSH connections with a strict host-key policy: known_hosts checked, new keys trusted only when asked.

    PollFailure (weibao.core.errors)
    ├── DeviceTimeout           no SSH banner / no answer in time
    ├── AuthFailure             credentials refused
    │   └── HostKeyRejected     unknown or changed host key
    ├── ProtocolFailure         the device answered something unusable
    └── Unreachable             nothing listens / no route (retryable)

Every blocking call takes its time from a ``Deadline`` so a worker thread always ends on its own.
Messages name the device, the address and the key fingerprint, never a password or passphrase.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from weibao.agent.errors import AuthFailure, DeviceTimeout, PollFailure, ProtocolFailure
from weibao.agent.inventory.model import Device, SshSettings

log = logging.getLogger(__name__)

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
_MAX_OUTPUT = 8 * 1024 * 1024
# known_hosts files are shared by all workers; appends and reads must not interleave
_known_hosts_lock = threading.Lock()


class Unreachable(PollFailure):
    """Nothing answers on the SSH port (refused, no route)."""

    retryable = True


class HostKeyRejected(AuthFailure):
    """The host key is unknown (and trust on first use is off) or differs from the recorded one."""


@dataclass
class Deadline:
    """The end of one device's operation; every blocking call gets what is left of it."""

    seconds: float
    end: float = field(init=False)

    def __post_init__(self) -> None:
        self.end = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self, slack: float = 0.2) -> bool:
        return time.monotonic() >= self.end - slack

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise DeviceTimeout(f"no answer within {self.seconds:g} s")
        return remaining


@dataclass
class Abort:
    """Lets the event loop close a connection whose worker thread outlived the deadline."""

    closers: list[Callable[[], object]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    fired: bool = False

    def register(self, closer: Callable[[], object]) -> None:
        with self.lock:
            if not self.fired:
                self.closers.append(closer)
                return
        closer()

    def fire(self) -> None:
        with self.lock:
            self.fired = True
            closers, self.closers = self.closers, []
        for closer in closers:
            try:
                closer()
            except Exception:  # closing a broken connection may fail; the result is already an error
                log.debug("closing an aborted connection failed", exc_info=True)


def known_hosts_path(settings: SshSettings) -> Path:
    return (settings.known_hosts or DEFAULT_KNOWN_HOSTS).expanduser()


def host_key_name(host: str, port: int) -> str:
    """The name OpenSSH files a host under: bare on port 22, ``[host]:port`` elsewhere."""
    return host if port == 22 else f"[{host}]:{port}"


def _load_known(path: Path) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    if path.exists():
        try:
            keys.load(str(path))
        except (OSError, paramiko.SSHException) as exc:
            raise ProtocolFailure(f"cannot read known_hosts file {path}: {type(exc).__name__}") from exc
    return keys


def _append_known(path: Path, name: str, key: paramiko.PKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="ascii") as fh:
        fh.write(f"{name} {key.get_name()} {key.get_base64()}\n")


def verify_host_key(device: str, path: Path, name: str, key: paramiko.PKey, accept_new: bool) -> None:
    """Accept ``key`` for ``name`` if known_hosts holds it; add it only when new and ``accept_new``."""
    with _known_hosts_lock:
        recorded = _load_known(path).lookup(name)
        if recorded:
            same = recorded.get(key.get_name())
            if same is not None and same.asbytes() == key.asbytes():
                return
            expected = ", ".join(f"{t} {k.fingerprint}" for t, k in recorded.items())
            raise HostKeyRejected(
                f"{device}: host key for {name} CHANGED: offered {key.get_name()} {key.fingerprint}, "
                f"{path} holds {expected}; refusing (possible man-in-the-middle). If the device was "
                f"really replaced, remove the old line (ssh-keygen -R '{name}' -f {path}) and re-check it"
            )
        if not accept_new:
            raise HostKeyRejected(
                f"{device}: unknown host key for {name}: {key.get_name()} {key.fingerprint} is not in {path}; "
                f"verify it and add it (ssh-keyscan -p PORT HOST >> {path}) or set "
                f"ssh.accept_new_host_keys: true to trust it on first use"
            )
        _append_known(path, name, key)
    log.warning("%s: trusted new host key %s %s for %s (added to %s)",
                device, key.get_name(), key.fingerprint, name, path)


def _preferred_key_types(transport: paramiko.Transport, known: dict[str, paramiko.PKey] | None) -> None:
    # ask for a key type already on file first, as OpenSSH does, so a host recorded with only one
    # type is not reported as changed merely because another type was negotiated
    if not known:
        return
    opts = transport.get_security_options()
    current = list(opts.key_types)
    first = [t for t in current if t in known or (t.startswith("rsa-sha2") and "ssh-rsa" in known)]
    if first:
        opts.key_types = first + [t for t in current if t not in first]


def open_transport(device: Device, deadline: Deadline, abort: Abort) -> paramiko.Transport:
    """TCP connect, key exchange and host-key check; returns an unauthenticated transport."""
    ssh = _settings(device)
    path = known_hosts_path(ssh)
    name = host_key_name(device.address, ssh.port)
    where = f"{device.name} ({device.address}:{ssh.port})"
    try:
        sock = socket.create_connection((device.address, ssh.port), timeout=deadline.left())
    except ConnectionRefusedError as exc:
        raise Unreachable(f"{where}: connection refused") from exc
    except TimeoutError as exc:
        raise DeviceTimeout(f"{where}: TCP connect timed out after {deadline.seconds:g} s") from exc
    except OSError as exc:
        raise Unreachable(f"{where}: cannot connect: {exc.strerror or type(exc).__name__}") from exc
    transport = paramiko.Transport(sock)
    abort.register(transport.close)
    try:
        with _known_hosts_lock:
            known = _load_known(path).lookup(name)
        _preferred_key_types(transport, dict(known) if known else None)
        transport.banner_timeout = deadline.left()
        transport.start_client(timeout=deadline.left())
        key = transport.get_remote_server_key()
        verify_host_key(device.name, path, name, key, ssh.accept_new_host_keys)
    except PollFailure:
        transport.close()
        raise
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        raise translate(where, exc, deadline) from exc
    return transport


def load_private_key(device: Device) -> paramiko.PKey | None:
    cred = _settings(device).credential
    if cred.key_file is None:
        return None
    path = cred.key_file.expanduser()
    passphrase = cred.key_passphrase.get_secret_value().encode() if cred.key_passphrase else None
    try:
        return paramiko.PKey.from_path(path, passphrase)  # bytes: cryptography's loader underneath insists
    except paramiko.PasswordRequiredException as exc:
        raise AuthFailure(f"{device.name}: key file {path} is encrypted and no key_passphrase is set") from exc
    except FileNotFoundError as exc:
        raise AuthFailure(f"{device.name}: key file {path} not found") from exc
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise AuthFailure(f"{device.name}: cannot load key file {path} (wrong passphrase or format)") from exc


def authenticate(device: Device, transport: paramiko.Transport, deadline: Deadline) -> None:
    cred = _settings(device).credential
    where = f"{device.name} ({device.address})"
    transport.auth_timeout = deadline.left()
    try:
        pkey = load_private_key(device)
        if pkey is not None:
            try:
                transport.auth_publickey(cred.username, pkey)
                return
            except paramiko.AuthenticationException:
                if cred.password is None:
                    raise
        if cred.password is not None:
            transport.auth_password(cred.username, cred.password.get_secret_value())
    except paramiko.AuthenticationException as exc:
        raise AuthFailure(f"{where}: authentication refused for user {cred.username!r}") from exc
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise translate(where, exc, deadline) from exc
    if not transport.is_authenticated():
        raise AuthFailure(f"{where}: authentication refused for user {cred.username!r}")


def run(transport: paramiko.Transport, command: str, deadline: Deadline) -> tuple[int, str]:
    """Run one command in an exec channel; returns (exit status, stdout+stderr as text)."""
    chan = transport.open_session(timeout=deadline.left())
    try:
        chan.set_combine_stderr(True)
        chan.settimeout(deadline.left())
        chan.exec_command(command)
        chunks: list[bytes] = []
        size = 0
        while True:
            chan.settimeout(deadline.left())
            try:
                data = chan.recv(65536)
            except TimeoutError as exc:
                raise DeviceTimeout(f"command did not finish within {deadline.seconds:g} s") from exc
            if not data:
                break
            size += len(data)
            if size > _MAX_OUTPUT:
                raise ProtocolFailure(f"command output exceeds {_MAX_OUTPUT} bytes")
            chunks.append(data)
        status = chan.recv_exit_status() if chan.exit_status_ready() else -1
        return status, b"".join(chunks).decode("utf-8", errors="replace")
    finally:
        chan.close()


def translate(where: str, exc: BaseException, deadline: Deadline) -> PollFailure:
    """Turn a library or socket exception into our tree, with a message free of secrets."""
    if isinstance(exc, PollFailure):
        return exc
    if isinstance(exc, TimeoutError | socket.timeout) or deadline.expired():
        # paramiko reports its own timeouts as "Negotiation failed" and the like
        return DeviceTimeout(f"{where}: no answer within {deadline.seconds:g} s")
    text = str(exc)
    if isinstance(exc, paramiko.SSHException) and ("banner" in text.lower() or "timeout" in text.lower()):
        return DeviceTimeout(f"{where}: no SSH banner within {deadline.seconds:g} s")
    if isinstance(exc, EOFError | ConnectionResetError):
        return ProtocolFailure(f"{where}: connection closed by the device")
    return ProtocolFailure(f"{where}: SSH error ({type(exc).__name__})")


def scrub(message: str, device: Device) -> str:
    """Remove any secret of the device that a library might have echoed into a message."""
    ssh = device.ssh
    if ssh is None:
        return message
    cred = ssh.credential
    for secret in (cred.password, cred.key_passphrase, cred.enable_secret):
        if secret is not None and secret.get_secret_value():
            message = message.replace(secret.get_secret_value(), "********")
    return message


def _settings(device: Device) -> SshSettings:
    if device.ssh is None:
        raise ProtocolFailure(f"{device.name}: no ssh settings")
    return device.ssh
