"""Consistent copies of live SQLite databases: the sqlite3 backup API, while the collector keeps writing."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from weibao.collector.errors import BackupError

_MAGIC = b"SQLite format 3\x00"
_SIDE_FILES = ("-wal", "-shm", "-journal")


def is_sqlite(path: Path) -> bool:
    """Whether ``path`` is an SQLite database (by its header)."""
    try:
        with path.open("rb") as fh:
            return fh.read(len(_MAGIC)) == _MAGIC
    except OSError:
        return False


def is_side_file(path: Path) -> bool:
    """A WAL, shared-memory or rollback journal beside a database: its content is in the copy."""
    return path.name.endswith(_SIDE_FILES)


def copy_sqlite(src: Path, dst: Path) -> None:
    """A transactionally consistent copy of ``src`` at ``dst``, self-contained (no WAL beside it).

    The copy is made in one step of the backup API: it reads one snapshot while writers go on (WAL mode),
    so the copy holds every transaction committed before it began and none after. Then it is checked.
    """
    with contextlib.closing(sqlite3.connect(src, timeout=30)) as source, \
            contextlib.closing(sqlite3.connect(dst)) as target:
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
            result = target.execute("PRAGMA quick_check").fetchone()
        except sqlite3.Error as exc:
            raise BackupError(f"{src}: cannot copy the database: {exc}") from exc
    if result is None or result[0] != "ok":
        raise BackupError(f"{src}: the copy fails SQLite's check ({result[0] if result else 'no answer'})")
