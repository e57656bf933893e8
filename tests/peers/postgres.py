"""PostgreSQL as a peer: initdb in a temp dir, pg_ctl on a spare loopback port, stopped after.

The server binaries are found by what is there, not by a version number: the newest
``/usr/lib/postgresql/*/bin`` (Debian and Ubuntu install each major version there), else ``pg_ctl`` on PATH.
As root the server runs as user ``postgres`` (it refuses root), so the temp dir is given to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.peers.collector import free_port


def _major(path: Path) -> int:
    try:
        return int(path.parent.name)
    except ValueError:
        return -1


def find_bin() -> Path | None:
    """The folder holding initdb and pg_ctl of the newest PostgreSQL installed, or None."""
    versions = sorted((p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")), key=_major)
    if versions:
        return versions[-1]
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


BIN = find_bin() or Path("/nonexistent")


def missing() -> str | None:
    """None when a server can be started here, else why not."""
    if not (BIN / "initdb").exists():
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running PostgreSQL as root needs the user postgres"
    return None


def available() -> bool:
    return missing() is None


@dataclass
class Postgres:
    port: int
    datadir: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def run_postgres() -> Iterator[Postgres]:
    base = Path(tempfile.mkdtemp(prefix="weibao-pg-"))
    datadir, sockdir = base / "data", base / "sock"
    sockdir.mkdir()
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for p in (base, sockdir):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    port = free_port()
    pg = Postgres(port, datadir)
    try:
        subprocess.run(_as_postgres([str(BIN / "initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres",
                                     "--no-sync", "-E", "UTF8"]), check=True, capture_output=True, timeout=120)
        opts = f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(_as_postgres([str(BIN / "pg_ctl"), "-D", str(datadir), "-o", opts, "-l",
                                     str(base / "pg.log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True, timeout=90)
        yield pg
    finally:
        if (datadir / "postmaster.pid").exists():
            subprocess.run(_as_postgres([str(BIN / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
