"""``weibao restore``: verify an archive whole, then restore it into an empty data directory.

Order, so that a refusal writes nothing: (1) the target data directory must be absent or empty, the
configuration files must not exist where they would go, a PostgreSQL target must be an empty database;
(2) every member is read and checksummed against the manifest, and the manifest must list exactly the
members present; (3) only then are the members extracted into a staging directory beside the target and
checked again, the PostgreSQL dump restored in one transaction, and the staged data directory renamed
into place. Only regular files are ever written, each under its own prefix: an archive cannot place a
file anywhere else.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from pydantic import ValidationError

from weibao.collector.backup import postgres
from weibao.collector.backup.manifest import (
    DATA_PREFIX,
    FILES_PREFIX,
    MANIFEST_NAME,
    STATE_PREFIX,
    Manifest,
    sha256_stream,
)
from weibao.collector.errors import BackupError
from weibao.collector.state.db import MIGRATIONS, create_state_engine

_MAX_MANIFEST = 64 * 1024 * 1024


@dataclass(frozen=True)
class RestorePlan:
    archive: Path
    data_dir: Path
    files_root: Path | None = Path("/")   # None: leave the configuration files out
    state_url: str | None = None          # the empty PostgreSQL database for an archive of a PostgreSQL state
    pg_bin: Path | None = None


@contextmanager
def _open(archive: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            yield tar
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BackupError(f"{archive}: damaged archive ({exc})") from exc


def _read_manifest(body: bytes, archive: Path) -> Manifest:
    try:
        return Manifest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(map(str, first["loc"]))
        raise BackupError(f"{archive}: damaged archive ({MANIFEST_NAME}: {where}: {first['msg']})") from exc


def verify(archive: Path) -> Manifest:
    """Read every member and compare it with the manifest; the manifest back, BackupError when anything differs."""
    if not archive.is_file():
        raise BackupError(f"{archive}: no such archive")
    found: dict[str, tuple[str, int]] = {}
    manifest_body: bytes | None = None
    with _open(archive) as tar:
        for member in tar:
            if not member.isreg():
                raise BackupError(f"{archive}: damaged archive (unexpected member {member.name!r})")
            if member.name in found or (member.name == MANIFEST_NAME and manifest_body is not None):
                raise BackupError(f"{archive}: damaged archive ({member.name!r} appears twice)")
            fh = tar.extractfile(member)
            assert fh is not None  # a regular member always has content
            if member.name == MANIFEST_NAME:
                if member.size > _MAX_MANIFEST:
                    raise BackupError(f"{archive}: damaged archive ({MANIFEST_NAME} too large)")
                manifest_body = fh.read()
            else:
                found[member.name] = sha256_stream(fh)
    if manifest_body is None:
        raise BackupError(f"{archive}: not a weibao backup (no {MANIFEST_NAME})")
    manifest = _read_manifest(manifest_body, archive)
    listed = manifest.by_path()
    problems = [f"{p}: not in the archive" for p in sorted(listed.keys() - found.keys())]
    problems += [f"{p}: not in the manifest" for p in sorted(found.keys() - listed.keys())]
    problems += [f"{p}: checksum differs" for p in sorted(listed.keys() & found.keys())
                 if found[p] != (listed[p].sha256, listed[p].size)]
    if problems:
        raise BackupError(f"{archive}: damaged archive ({'; '.join(problems[:10])})")
    return manifest


def _empty_dir(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _check_targets(manifest: Manifest, plan: RestorePlan) -> None:
    if not _empty_dir(plan.data_dir):
        raise BackupError(f"{plan.data_dir} is not empty: restore only into an empty or new directory")
    try:
        if manifest.state.revision is not None:
            ScriptDirectory(str(MIGRATIONS)).get_revision(manifest.state.revision)
    except CommandError as exc:
        raise BackupError(f"the archive's state is at schema {manifest.state.revision}, which this weibao does "
                          "not know: restore it with the weibao version that made it, or a newer one") from exc
    if plan.files_root is not None:
        taken = [str(plan.files_root / e.relative) for e in manifest.entries
                 if e.path.startswith(FILES_PREFIX + "/") and (plan.files_root / e.relative).exists()]
        if taken:
            raise BackupError(f"these files exist and would be overwritten: {', '.join(taken[:10])}; restore the "
                              "configuration elsewhere with --files-root DIR, or leave it out with --skip-files")
    pg = manifest.state.kind == "postgresql"
    if pg and plan.state_url is None:
        raise BackupError("the archive holds a PostgreSQL state: give --state-url of an empty database")
    if not pg and plan.state_url is not None:
        raise BackupError("the archive holds an SQLite state (restored inside the data directory): no --state-url")
    if pg and plan.state_url is not None:
        engine = create_state_engine(plan.state_url)
        try:
            n = postgres.user_tables(engine)
        finally:
            engine.dispose()
        if n:
            raise BackupError(f"the target database holds {n} tables: restore only into an empty database")


def _extract(archive: Path, manifest: Manifest, staging: Path) -> None:
    """Write every member under ``staging`` (by its archive name), checking each checksum again."""
    listed = manifest.by_path()
    with _open(archive) as tar:
        for member in tar:
            if member.name == MANIFEST_NAME:
                continue
            entry = listed.get(member.name)
            if entry is None or not member.isreg():
                raise BackupError(f"{archive}: damaged archive (changed while restoring: {member.name!r})")
            dst = staging / entry.path
            dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fh = tar.extractfile(member)
            assert fh is not None
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                got = sha256_stream(fh, out)
                out.flush()
                os.fsync(out.fileno())
            if got != (entry.sha256, entry.size):
                raise BackupError(f"{archive}: damaged archive (changed while restoring: {member.name!r})")
            os.chmod(dst, entry.mode)


def restore_backup(plan: RestorePlan) -> Manifest:
    """Verify, check the targets, then restore (see the module docstring); the manifest back."""
    manifest = verify(plan.archive)
    _check_targets(manifest, plan)
    parent = plan.data_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=".weibao-restore-"))
    try:
        _extract(plan.archive, manifest, staging)
        dump = [e for e in manifest.entries if e.path.startswith(STATE_PREFIX + "/")]
        if dump and plan.state_url is not None:
            engine = create_state_engine(plan.state_url)
            try:
                postgres.restore(plan.state_url, engine, staging / dump[0].path, plan.pg_bin)
            finally:
                engine.dispose()
        data = staging / DATA_PREFIX
        data.mkdir(exist_ok=True)
        if plan.data_dir.exists():
            plan.data_dir.rmdir()  # checked empty above
        os.replace(data, plan.data_dir)
        os.chmod(plan.data_dir, 0o700)
        if plan.files_root is not None:
            for e in manifest.entries:
                if e.path.startswith(FILES_PREFIX + "/"):
                    dst = plan.files_root / e.relative
                    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
                    shutil.move(staging / e.path, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest
