"""The collector's files are its owner's alone whatever the umask (issue item 8), and the tickets CLI
refuses a token file that others can read, as the agent does.

Everything here runs under umask 022 (set in the processes the test starts): the data directory used to
be created ``drwxr-xr-x`` and ``state.db`` ``-rw-r--r--``, though it holds token hashes, the asset
inventory and tickets.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.collector import REPO, free_port, run_collector, wait_http

pytestmark = pytest.mark.timeout(120)


def _umask_022() -> None:
    os.umask(0o022)


def modes(root: Path) -> dict[str, int]:
    """Path (relative to ``root``) -> permission bits, for ``root`` and everything under it."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def assert_private(root: Path, *, besides: tuple[str, ...] = (),
                   expect: tuple[str, ...] = ("state.db", "state.db-wal", "run")) -> None:
    found = {p: m for p, m in modes(root).items() if p not in besides}
    loose = {p: f"{m:04o}" for p, m in found.items() if m & 0o077}
    assert not loose, f"readable by others: {loose}"
    assert set(expect) <= found.keys()


def weibao_022(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "weibao", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=check, preexec_fn=_umask_022)


def test_collector_data_directory_and_files_are_private(tmp_path: Path) -> None:
    with run_collector(tmp_path, preexec=_umask_022) as peer:
        assert peer.token("site-a")  # writes to state.db
        assert_private(peer.data_dir)
        assert stat.S_IMODE(peer.data_dir.stat().st_mode) == 0o700


def test_an_existing_open_data_directory_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # noqa: S103 - an older collector's data directory, as the issue found it
    sqlite3.connect(data / "state.db").close()
    os.chmod(data / "state.db", 0o644)
    (data / "notes.txt").write_text("not ours")
    os.chmod(data / "notes.txt", 0o644)
    with run_collector(tmp_path, preexec=_umask_022) as peer:
        assert_private(peer.data_dir, besides=("notes.txt",))
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "state.db").stat().st_mode) == 0o600
        assert "was accessible to others (mode 0755): now 0700" in peer.log()
    assert stat.S_IMODE((data / "notes.txt").stat().st_mode) == 0o644  # not the collector's: left alone


def test_token_issue_makes_a_private_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    out = weibao_022("token", "issue", "site-a", "--data", str(data))
    assert out.stdout.strip().startswith("wb_")
    assert_private(data, expect=("state.db",))


def test_weibao_run_keeps_its_data_private(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("site: perm-lab\ndevices:\n  - {name: lo-1, address: 127.0.0.1, kind: server, "
                         "category: mis, icmp: {count: 1, interval_ms: 10}, schedule: {icmp_s: 1}}\n")
    port = free_port()
    data = tmp_path / "data"
    log = tmp_path / "run.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "weibao", "run", "--inventory", str(inventory), "--data",
                                 str(data), "--listen", f"127.0.0.1:{port}", "--no-traps"], cwd=REPO, stdout=err,
                                stderr=err, preexec_fn=_umask_022)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=60)
        assert_private(data)
        assert stat.S_IMODE((data / "agent").stat().st_mode) == 0o700
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)
    assert_private(data, expect=("state.db", "run", "agent"))  # the journal is gone after a clean stop


def test_tickets_cli_refuses_a_token_file_others_can_read(tmp_path: Path) -> None:
    token = tmp_path / "engineer.token"
    token.write_text("wb_s3cret-token-value\n")
    token.chmod(0o644)
    out = weibao_022("tickets", "list", "--collector", "http://127.0.0.1:9", "--token-file", str(token), check=False)
    assert out.returncode == 2
    assert "readable by others" in out.stderr and "0644" in out.stderr
    assert "s3cret" not in out.stderr + out.stdout
    token.chmod(0o600)  # accepted: what fails now is the connection (nothing listens on port 9)
    out = weibao_022("tickets", "list", "--collector", "http://127.0.0.1:9", "--token-file", str(token), check=False)
    assert out.returncode == 2 and "cannot reach the collector" in out.stderr
    assert "s3cret" not in out.stderr + out.stdout
