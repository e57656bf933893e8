"""``weibao backup``: a consistent copy of a collector's state and data directory plus its configuration.

Everything is first staged beside the archive (SQLite databases through the backup API, other files copied,
the PostgreSQL state through pg_dump), checksummed, then written into one tar.gz with ``MANIFEST.json``
first. The archive appears under its name only once complete (written aside, synced, renamed), owner-only:
it holds the client's data and the site's secrets.

Left out: ``run/`` of the data directory (locks, per-process counters, the workers' hand-over file) and the
journals beside SQLite databases (their content is in the copies).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from weibao.collector.backup import postgres
from weibao.collector.backup.manifest import (
    DATA_PREFIX,
    FILES_PREFIX,
    MANIFEST_NAME,
    STATE_PREFIX,
    Entry,
    EntryKind,
    Manifest,
    StateInfo,
    sha256_file,
)
from weibao.collector.backup.sqlite import copy_sqlite, is_side_file, is_sqlite
from weibao.collector.config import CollectorConfig
from weibao.collector.errors import BackupError
from weibao.collector.state.db import create_state_engine, current_revision

log = logging.getLogger(__name__)

_SKIP_DIRS = frozenset({"run"})
_GZIP_LEVEL = 6


@dataclass(frozen=True)
class BackupPlan:
    """What one backup copies."""

    data_dir: Path
    state_url: str
    files: tuple[Path, ...] = ()     # configuration files and other paths (files or directories) to include
    pg_bin: Path | None = None


@dataclass
class _Staged:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def config_files(cfg: CollectorConfig, config_path: Path | None) -> list[Path]:
    """The configuration file and every file it names (rules, calendars, notifications, maintenance)."""
    c = cfg.contract
    samples = cfg.tsdb.path if cfg.tsdb.backend == "sqlite" else None
    named = [config_path, c.rules, c.inspection_rules, *c.calendar, c.notify, c.maintenance, samples]
    return [p for p in named if p is not None]


def _walk(root: Path, *, skip_top: frozenset[str] = frozenset()) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in skip_top]
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _stage_one(src: Path, member: str, staging: Path, staged: _Staged, origin: str | None = None) -> None:
    if src.is_symlink() or not src.is_file():
        staged.skipped.append(f"{src} (not a regular file)")
        return
    dst = staging / member
    dst.parent.mkdir(parents=True, exist_ok=True)
    if is_sqlite(src):
        copy_sqlite(src, dst)
        kind = EntryKind.SQLITE
    else:
        shutil.copyfile(src, dst)
        kind = EntryKind.FILE
    digest, size = sha256_file(dst)
    staged.entries.append(Entry(path=member, kind=kind, sha256=digest, size=size,
                                mode=src.stat().st_mode & 0o777, origin=origin or str(src)))


def _file_member(path: Path) -> str:
    return f"{FILES_PREFIX}/{path.as_posix().lstrip('/')}"


def _named_files(paths: Iterable[Path], data_dir: Path, staging: Path) -> Iterator[Path]:
    """Each named file, and the files under each named directory, once; those in the data directory are
    copied with it, and this backup's own staging area is never copied into itself."""
    seen: set[Path] = set()
    for p in paths:
        p = p.absolute()
        for f in _walk(p) if p.is_dir() else [p]:
            if f in seen or f.is_relative_to(data_dir) or f.is_relative_to(staging):
                continue
            seen.add(f)
            yield f


def _sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite") and "///" in url:
        return Path(url.split("///", 1)[1]).absolute()
    return None


def stage(plan: BackupPlan, staging: Path) -> Manifest:
    """Copy, check and checksum everything of ``plan`` under ``staging``; the manifest back."""
    data_dir = plan.data_dir.absolute()
    if not data_dir.is_dir():
        raise BackupError(f"{data_dir}: no such data directory")
    missing = [str(p) for p in plan.files if not p.exists()]
    if missing:
        raise BackupError(f"no such file or directory: {', '.join(missing)}")
    state_file = _sqlite_path(plan.state_url)
    if state_file is not None and not state_file.is_file():
        raise BackupError(f"no state database at {state_file} (has the collector run with this data directory?)")
    staged = _Staged()
    engine = create_state_engine(plan.state_url)
    try:
        revision = current_revision(engine)
        server = None
        if engine.dialect.name == "postgresql":
            member = f"{STATE_PREFIX}/postgresql.dump"
            (staging / STATE_PREFIX).mkdir()
            server = postgres.dump(plan.state_url, engine, staging / member, plan.pg_bin)
            digest, size = sha256_file(staging / member)
            staged.entries.append(Entry(path=member, kind=EntryKind.PG_DUMP, sha256=digest, size=size, mode=0o600,
                                        origin="postgresql"))
    finally:
        engine.dispose()
    for f in _walk(data_dir, skip_top=_SKIP_DIRS):
        if not is_side_file(f):
            _stage_one(f, f"{DATA_PREFIX}/{f.relative_to(data_dir).as_posix()}", staging, staged)
    extra = list(plan.files)
    if state_file is not None and not state_file.is_relative_to(data_dir):
        extra.append(state_file)
    for f in _named_files(extra, data_dir, staging.absolute()):
        if not is_side_file(f):
            _stage_one(f, _file_member(f), staging, staged)
    for s in staged.skipped:
        log.warning("backup: left out %s", s)
    kind = "postgresql" if server is not None else "sqlite"
    return Manifest(created=datetime.now(UTC), weibao=version("weibao"), data_dir=str(data_dir),
                    state=StateInfo(kind=kind, revision=revision, server_version=server), entries=staged.entries)


def _write_archive(manifest: Manifest, staging: Path, out: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=_GZIP_LEVEL) as tar:
                body = manifest.model_dump_json(indent=1).encode()
                info = tarfile.TarInfo(MANIFEST_NAME)
                info.size, info.mode, info.mtime = len(body), 0o600, int(manifest.created.timestamp())
                tar.addfile(info, io.BytesIO(body))
                for e in manifest.entries:
                    info = tarfile.TarInfo(e.path)
                    info.size, info.mode, info.mtime = e.size, e.mode, int(manifest.created.timestamp())
                    with (staging / e.path).open("rb") as fh:
                        tar.addfile(info, fh)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_backup(plan: BackupPlan, out: Path) -> Manifest:
    """Write the archive of ``plan`` to ``out`` (refused when it exists); its manifest back."""
    if out.exists():
        raise BackupError(f"{out} exists: give a new file name")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent}: no such directory")
    if out.absolute().is_relative_to(plan.data_dir.absolute()):
        raise BackupError(f"{out} is inside the data directory {plan.data_dir}: write the archive elsewhere")
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=".weibao-backup-"))
    try:
        manifest = stage(plan, staging)
        _write_archive(manifest, staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest
