"""pg_dump and pg_restore of a PostgreSQL state store, with the client tools of the server's own version.

Connection settings go to the tools through libpq's environment (``PGHOST``, ``PGPASSWORD``...), never on
their command line, where any user of the machine could read a password.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import Engine, text

from weibao.collector.errors import BackupError
from weibao.collector.state.db import state_url

PG_LIB = Path("/usr/lib/postgresql")  # Debian's versioned client tools: /usr/lib/postgresql/15/bin
# libpq environment variables for the query parameters a state URL may carry
_QUERY_ENV = {"host": "PGHOST", "port": "PGPORT", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
              "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "connect_timeout": "PGCONNECT_TIMEOUT"}
_TIMEOUT_S = 6 * 3600


def libpq_env(url: str) -> dict[str, str]:
    """The environment that points libpq's tools at the database of ``url`` (a SQLAlchemy URL)."""
    u = state_url(url)
    env = dict(os.environ)
    for key, value in u.query.items():
        if key in _QUERY_ENV:
            env[_QUERY_ENV[key]] = value if isinstance(value, str) else value[0]
    fields: tuple[tuple[str, object], ...] = (("PGHOST", u.host), ("PGPORT", u.port), ("PGUSER", u.username),
                                              ("PGPASSWORD", u.password), ("PGDATABASE", u.database))
    for var, field in fields:
        if field is not None:
            env[var] = str(field)
    return env


def server_version(engine: Engine) -> tuple[int, str]:
    """(major version, full version text) of the server."""
    with engine.connect() as conn:
        num = int(conn.execute(text("SHOW server_version_num")).scalar_one())
        full = str(conn.execute(text("SHOW server_version")).scalar_one())
    return num // 10000, full


def _tool_major(tool: Path) -> int | None:
    try:
        out = subprocess.run([str(tool), "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\)\s+(\d+)", out.stdout) or re.search(r"(\d+)\.\d+", out.stdout)
    return int(found.group(1)) if found else None


def find_tool(name: str, major: int, pg_bin: Path | None = None) -> Path:
    """``pg_dump`` or ``pg_restore`` no older than the server (an older one refuses a newer server's data)."""
    candidates = [pg_bin / name] if pg_bin is not None else [PG_LIB / str(major) / "bin" / name]
    on_path = shutil.which(name)
    if pg_bin is None and on_path is not None:
        candidates.append(Path(on_path))
    tried = []
    for c in candidates:
        if not c.is_file():
            tried.append(f"{c} (missing)")
            continue
        got = _tool_major(c)
        if got is not None and got >= major:
            return c
        tried.append(f"{c} (version {got if got is not None else '?'})")
    raise BackupError(f"no {name} of PostgreSQL {major} or newer: tried {', '.join(tried)}; install the client "
                      f"tools of the server's version or name their directory with --pg-bin")


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"{what}: {exc}") from exc
    if proc.returncode != 0:
        raise BackupError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def dump(url: str, engine: Engine, out: Path, pg_bin: Path | None = None) -> str:
    """Dump the state database to ``out`` (custom format: one consistent snapshot); the server's version back."""
    major, full = server_version(engine)
    tool = find_tool("pg_dump", major, pg_bin)
    _run([str(tool), "--format=custom", "--no-password", f"--file={out}"], libpq_env(url), "pg_dump")
    return full


def user_tables(engine: Engine) -> int:
    """Tables outside PostgreSQL's own schemas: 0 means an empty database, fit to restore into."""
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")).scalar_one())


def restore(url: str, engine: Engine, dump_file: Path, pg_bin: Path | None = None) -> None:
    """Restore ``dump_file`` into the (empty) database of ``url``: all of it in one transaction, or nothing.

    Objects belong to the user restoring them (``--no-owner``): the role of the collector that will use them.
    """
    major, _ = server_version(engine)
    tool = find_tool("pg_restore", major, pg_bin)
    env = libpq_env(url)
    database = env.get("PGDATABASE")
    if not database:
        raise BackupError("the state URL names no database to restore into")
    _run([str(tool), "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges", "--no-password",
          f"--dbname={database}", str(dump_file)], env, "pg_restore")
