"""A small SSH server that plays a network device's CLI from recorded command output.

Recordings live in ``cli_recordings/<platform>/``: ``_prompt`` (the prompt, e.g. ``<HZ-CORE-S5720>``),
optional ``_banner`` (sent before the first prompt) and ``_invalid`` (answer to an unknown command), and
one file per command, named after the command with spaces as underscores (``display_version.txt``).
An empty file is a command that prints nothing (``terminal length 0``). ``set_output`` replaces one
command's output while the server runs, so a test can change the running configuration between polls;
a command in ``stalled`` is never answered.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import threading
from pathlib import Path

import paramiko

RECORDINGS = Path(__file__).parent / "cli_recordings"
_EXIT = {"quit", "exit", "logout"}

log = logging.getLogger(__name__)


def load_recording(platform: str) -> tuple[str, str, str, dict[str, str]]:
    base = RECORDINGS / platform
    prompt = (base / "_prompt").read_text().strip("\n")
    banner = (base / "_banner").read_text() if (base / "_banner").exists() else ""
    invalid = (base / "_invalid").read_text() if (base / "_invalid").exists() else "% Unknown command\n"
    outputs = {f.stem.replace("_", " "): f.read_text() for f in base.glob("*.txt")}
    return prompt, banner, invalid, outputs


class _Auth(paramiko.ServerInterface):  # type: ignore[misc]  # paramiko ships no type information
    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.shell = threading.Event()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        if username == self.username and password == self.password:
            return int(paramiko.AUTH_SUCCESSFUL)
        return int(paramiko.AUTH_FAILED)

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return int(paramiko.OPEN_SUCCEEDED)
        return int(paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED)

    def check_channel_pty_request(self, *args: object) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        self.shell.set()
        return True


class CliServer:
    """Serves one recorded device on 127.0.0.1; ``port`` and ``host_key`` are known after ``start()``."""

    def __init__(self, platform: str, *, username: str = "netops", password: str | None = None) -> None:
        self.platform = platform
        self.username = username
        self.password = password or "Cli-" + secrets.token_urlsafe(12)
        self.prompt, self.banner, self.invalid, self._outputs = load_recording(platform)
        self._lock = threading.Lock()
        self.host_key = paramiko.ECDSAKey.generate()
        self.commands: list[str] = []  # every command received, for assertions
        self.stalled: set[str] = set()  # commands that get no answer at all: a device hanging mid-session
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.port = 0

    # --- control ---------------------------------------------------------------------------------

    def set_output(self, command: str, text: str) -> None:
        with self._lock:
            self._outputs[command] = text

    def output(self, command: str) -> str | None:
        with self._lock:
            return self._outputs.get(command)

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}\n"

    def start(self) -> CliServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.settimeout(0.2)
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        t = threading.Thread(target=self._accept_loop, name=f"cli-{self.platform}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in list(self._threads):
            t.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> CliServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- serving ---------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._session, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _session(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        auth = _Auth(self.username, self.password)
        try:
            transport.start_server(server=auth)
            chan = transport.accept(timeout=10)
            if chan is None or not auth.shell.wait(timeout=10):
                return
            self._shell(chan)
        except (paramiko.SSHException, EOFError, OSError):
            log.debug("cli session ended", exc_info=True)
        finally:
            transport.close()

    def _send(self, chan: paramiko.Channel, text: str) -> None:
        chan.sendall(text.replace("\r\n", "\n").replace("\n", "\r\n").encode())

    def _shell(self, chan: paramiko.Channel) -> None:
        chan.settimeout(0.2)
        if self.banner:
            self._send(chan, self.banner)
        self._send(chan, "\n" + self.prompt)
        line = ""
        last = ""
        while not self._stop.is_set():
            try:
                data = chan.recv(4096)
            except TimeoutError:
                continue
            if not data:
                return
            for ch in data.decode(errors="replace"):
                if ch == "\n" and last == "\r":
                    last = ch
                    continue
                last = ch
                if ch in "\r\n":
                    if not self._answer(chan, line.strip()):
                        return
                    line = ""
                elif ch in "\x08\x7f":
                    line = line[:-1]
                else:
                    line += ch
                    chan.sendall(ch.encode())  # a terminal echoes what is typed

    def _answer(self, chan: paramiko.Channel, command: str) -> bool:
        if command:
            self.commands.append(command)
        if command in _EXIT:
            self._send(chan, "\n")
            with contextlib.suppress(OSError):
                chan.close()
            return False
        if command in self.stalled:
            return True
        out = self.output(command) if command else ""
        if out is None:
            out = self.invalid
        body = out.strip("\n")
        self._send(chan, "\n" + (body + "\n" if body else "") + self.prompt)
        return True
