"""Writing the client's data to disk: atomically (never a half-written file) and readable by few.

    write_atomic(path, text)     replace a file, never leaving it half-written (mode 0600)
    private_dir(path)            a data directory that only its owner can enter (0700), its files 0600
    private_umask()              new files and directories of this process only for its owner
    read_token_file(path)        a bearer token from a file that only its owner can read
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from weibao.core.errors import ConfigError, Problem

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077


def write_atomic(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text``: written to a temporary file beside it, synced, then renamed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def private_umask() -> None:
    """Files and directories this process creates from now on are its owner's alone (SQLite's journal and
    lock files included, which no open() of ours names), whatever umask it was started with."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path, *, owned: Iterable[str] = ()) -> Path:
    """``path`` created 0700 if missing; an existing one that group or others may enter is tightened to
    0700 (with a warning), and so are the entries named in ``owned`` (files 0600, directories 0700): only
    those, as the directory may be one the operator named and holds files that are not ours."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    _tighten(path, 0o700)
    for name in owned:
        child = path / name
        try:
            st = child.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            _tighten(child, 0o600)
        elif stat.S_ISDIR(st.st_mode):
            _tighten(child, 0o700)
    return path


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077:
        log.warning("%s was accessible to others (mode %04o): now %04o", path, current, mode)
        os.chmod(path, mode)


def read_token_file(path: Path) -> str:
    """The bearer token in ``path``: refused (ConfigError) if group or others may read the file, or if it
    does not hold one token on one line. As ssh refuses a private key that others can read."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read the token file: {exc.strerror}")]) from exc
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise ConfigError([Problem(str(path), None, "", f"the token file is readable by others (mode "
                                   f"{stat.S_IMODE(st.st_mode):04o}); run chmod 600 {path}")])
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read the token file: {type(exc).__name__}")]) from exc
    if not token or any(c.isspace() for c in token):
        raise ConfigError([Problem(str(path), None, "", "the token file must hold one token on one line")])
    return token
