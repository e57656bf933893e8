"""VictoriaMetrics (Debian's ``victoria-metrics``) as a peer: temp storage, spare loopback port, stop by PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.peers.collector import free_port, wait_http

BINARY = "/usr/bin/victoria-metrics"


def available() -> bool:
    return os.access(BINARY, os.X_OK)


@dataclass
class Victoria:
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


@contextmanager
def run_victoria(workdir: Path | None = None) -> Iterator[Victoria]:
    own = workdir is None
    base = Path(tempfile.mkdtemp(prefix="weibao-vm-")) if workdir is None else workdir
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (base / "vm.log").open("wb")
    proc = subprocess.Popen([BINARY, f"-storageDataPath={base / 'storage'}", f"-httpListenAddr=127.0.0.1:{port}",
                             "-search.latencyOffset=0s", "-retentionPeriod=100y"],
                            stdout=log, stderr=subprocess.STDOUT)
    vm = Victoria(f"http://127.0.0.1:{port}", proc)
    try:
        wait_http(f"{vm.url}/health", proc)
        yield vm
    finally:
        vm.stop()
        log.close()
        if own:
            shutil.rmtree(base, ignore_errors=True)
