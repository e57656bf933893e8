"""Simulated SNMP devices on loopback: snmpsim serving recordings of real devices (demo and tests).

``SnmpSim`` copies the chosen snmpsim-data recordings into a private directory, starts
``snmpsim-command-responder`` on 127.0.0.1 and waits until it answers. Each recording is one
device: the community string (v1/v2c) selects it, so every simulated device shares one address
and port and differs by community (``community_for(name)``).

As root, snmpsim must drop privileges (``--process-user=nobody --process-group=nogroup``): it then
runs from a venv readable by nobody (``/opt/weibao-snmpsim``, overridable with the environment
variable ``WEIBAO_SNMPSIM_VENV``) and the copied data and index cache are made readable by nobody.
Not as root it runs from the current interpreter's venv.
"""

from __future__ import annotations

import atexit
import bz2
import contextlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

DEFAULT_SNMPSIM_VENV = Path("/opt/weibao-snmpsim")
RESPONDER = "snmpsim-command-responder"

# What `weibao demo` simulates: name -> recording (path under snmpsim_data/data, without extension).
DEMO_RECORDINGS: dict[str, str] = {
    # core switch: Huawei S5720 (VRP), 39 interfaces, hwEntityStateTable with CPU/memory/temperature
    "core-sw-1": "network/router/huawei-s5720",
    # access switch: H3C E528 (Comware), 31 interfaces; its CPU reading varies on every poll
    "access-sw-1": "network/switch/h3c-e528-2",
    # Linux server: net-snmp with HOST-RESOURCES (disks, RAM) and UCD (CPU counters, memory)
    "linux-srv-1": "os/linux/unknown-004",
    # UPS: Eaton 93E with the RFC 1628 UPS-MIB (3-phase input/output, charge, runtime, temperature)
    "ups-1": "UPS/eaton-93e-80",
}


class SimLabError(RuntimeError):
    """snmpsim could not be started or did not answer."""


def _free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def data_roots() -> list[Path]:
    """Directories holding snmpsim-data recordings: the snmpsim venv's, then the current interpreter's."""
    roots = []
    venv = Path(os.environ.get("WEIBAO_SNMPSIM_VENV", str(DEFAULT_SNMPSIM_VENV)))
    roots.extend(sorted(venv.glob("lib/python3*/site-packages/snmpsim_data/data")))
    try:
        import snmpsim_data  # type: ignore[import-not-found,import-untyped,unused-ignore]

        roots.append(Path(snmpsim_data.__file__).parent / "data")
    except ImportError:
        pass
    return [r for r in roots if r.is_dir()]


def find_recording(name: str) -> Path:
    """The file of a recording given as ``UPS/eaton-93e-80`` (or an existing .snmprec path)."""
    p = Path(name)
    if p.is_file():
        return p
    for root in data_roots():
        for ext in (".snmprec", ".snmprec.bz2"):
            candidate = root / f"{name}{ext}"
            if candidate.is_file():
                return candidate
    raise SimLabError(f"no snmpsim recording named {name!r} (looked in {', '.join(map(str, data_roots()))})")


def read_recording(name: str) -> dict[str, tuple[str, str]]:
    """The recording's records: OID -> (type tag, value as written), for tests to compare against."""
    path = find_recording(name)
    opener = bz2.open if path.suffix == ".bz2" else open
    out: dict[str, tuple[str, str]] = {}
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("|", 2)
            if len(parts) == 3:
                out[parts[0]] = (parts[1], parts[2])
    return out


class SnmpSim:
    """A running snmpsim serving chosen recordings on 127.0.0.1; use as a context manager."""

    def __init__(self, recordings: Mapping[str, str] | Iterable[str], port: int | None = None, *,
                 start_timeout_s: float = 60.0, host: str = "127.0.0.1") -> None:
        if isinstance(recordings, Mapping):
            self.recordings = dict(recordings)
        else:
            self.recordings = {Path(r).name.removesuffix(".bz2").removesuffix(".snmprec"): r for r in recordings}
        for name in self.recordings:
            if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
                raise SimLabError(f"bad simulated device name {name!r}: letters, digits, '-', '_', '.'")
        self.host = host  # any 127.x.y.z: a device of its own address, e.g. for traps from it
        self.port = port or _free_udp_port(host)
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None

    def community_for(self, name: str) -> str:
        if name not in self.recordings:
            raise KeyError(name)
        return name

    def _command(self, data: Path, cache: Path) -> list[str]:
        args = [f"--data-dir={data}", f"--cache-dir={cache}", f"--agent-udpv4-endpoint={self.host}:{self.port}",
                "--logging-method=null"]
        if os.geteuid() == 0:
            venv = Path(os.environ.get("WEIBAO_SNMPSIM_VENV", str(DEFAULT_SNMPSIM_VENV)))
            exe = venv / "bin" / RESPONDER
            if not exe.exists():
                raise SimLabError(f"{exe} not found (set WEIBAO_SNMPSIM_VENV to a venv with snmpsim)")
            return [str(exe), *args, "--process-user=nobody", "--process-group=nogroup"]
        exe = Path(sys.executable).parent / RESPONDER
        if not exe.exists():
            found = shutil.which(RESPONDER)
            if found is None:
                raise SimLabError(f"{RESPONDER} not found (pip install snmpsim snmpsim-data)")
            exe = Path(found)
        return [str(exe), *args]

    def start(self) -> SnmpSim:
        if self._proc is not None:
            return self
        self._tmp = Path(tempfile.mkdtemp(prefix="weibao-snmpsim-"))
        try:
            data, cache = self._tmp / "data", self._tmp / "cache"
            data.mkdir()
            cache.mkdir()
            for name, rec in self.recordings.items():
                src = find_recording(rec)
                if src.name.endswith(".bz2"):
                    # snmpsim seeks in its data files: in a .bz2 every seek decompresses from the start
                    with bz2.open(src, "rb") as fin, open(data / f"{name}.snmprec", "wb") as fout:
                        shutil.copyfileobj(fin, fout, 1 << 20)
                else:
                    shutil.copyfile(src, data / f"{name}.snmprec")
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                for d in (self._tmp, data):
                    d.chmod(0o755)
                for f in data.iterdir():
                    f.chmod(0o644)
                os.chown(cache, nobody.pw_uid, nobody.pw_gid)
            cmd = self._command(data, cache)
            log.info("starting snmpsim on %s:%d with %d recordings", self.host, self.port, len(self.recordings))
            with open(self._tmp / "stderr.log", "wb") as err:  # a file: a full pipe would stall snmpsim
                self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                              cwd=self._tmp, start_new_session=True)
            # a parent that exits without stop() must not leave snmpsim running
            atexit.register(self.stop)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        probe = _probe_packet(next(iter(self.recordings), "public"))
        deadline = time.monotonic() + self.start_timeout_s
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    assert self._tmp is not None
                    err = (self._tmp / "stderr.log").read_text(errors="replace")[-2000:]
                    raise SimLabError(f"snmpsim exited with {self._proc.returncode}: {err}")
                try:
                    s.sendto(probe, (self.host, self.port))
                    s.recvfrom(65535)
                    return
                except OSError:
                    time.sleep(0.1)
        raise SimLabError(f"snmpsim did not answer within {self.start_timeout_s:g} s")

    def stop(self) -> None:
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> SnmpSim:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _probe_packet(community: str) -> bytes:
    """An SNMPv2c GET of sysUpTime.0: any answer means snmpsim is serving."""
    from pyasn1.codec.ber import encoder  # type: ignore[import-untyped]  # pyasn1 ships no type information
    from pysnmp.proto import api

    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = p.GetRequestPDU()
    p.apiPDU.set_defaults(pdu)
    p.apiPDU.set_varbinds(pdu, [((1, 3, 6, 1, 2, 1, 1, 3, 0), p.Null(""))])
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, community)
    p.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))
