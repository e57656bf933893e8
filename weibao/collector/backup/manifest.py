"""The manifest of a backup archive (``MANIFEST.json``): what each member is, where it came from, its checksum."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

MANIFEST_NAME = "MANIFEST.json"
FORMAT = "weibao-backup"
DATA_PREFIX = "data"      # the data directory's files, relative to it
FILES_PREFIX = "files"    # configuration and other named files, under their absolute path
STATE_PREFIX = "state"    # a PostgreSQL dump
_CHUNK = 1 << 20


class EntryKind(StrEnum):
    SQLITE = "sqlite"     # a consistent copy of an SQLite database
    FILE = "file"         # a plain file
    PG_DUMP = "pg_dump"   # pg_dump --format=custom of the state store


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Entry(_Strict):
    path: str                     # the member's name in the archive
    kind: EntryKind
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    mode: int = Field(ge=0, le=0o777)
    origin: str                   # the absolute path it was copied from, or "postgresql"

    @field_validator("path")
    @classmethod
    def _member(cls, v: str) -> str:
        p = PurePosixPath(v)
        if p.is_absolute() or ".." in p.parts or str(p) != v or len(p.parts) < 2:
            raise ValueError(f"{v!r} is not a plain relative member name")
        if p.parts[0] not in (DATA_PREFIX, FILES_PREFIX, STATE_PREFIX):
            raise ValueError(f"{v!r} is outside {DATA_PREFIX}/, {FILES_PREFIX}/ and {STATE_PREFIX}/")
        return v

    @property
    def relative(self) -> PurePosixPath:
        """The path under its prefix (``data/state.db`` -> ``state.db``)."""
        return PurePosixPath(*PurePosixPath(self.path).parts[1:])


class StateInfo(_Strict):
    kind: Literal["sqlite", "postgresql"]
    revision: str | None          # the schema revision (Alembic) when the copy was taken
    server_version: str | None = None


class Manifest(_Strict):
    format: Literal["weibao-backup"] = "weibao-backup"
    version: Literal[1] = 1
    created: AwareDatetime
    weibao: str
    data_dir: str
    state: StateInfo
    entries: list[Entry]

    def by_path(self) -> dict[str, Entry]:
        return {e.path: e for e in self.entries}

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)


def sha256_stream(fh: IO[bytes], sink: IO[bytes] | None = None) -> tuple[str, int]:
    """SHA-256 and length of what ``fh`` holds, copied to ``sink`` on the way when given."""
    h = hashlib.sha256()
    n = 0
    while chunk := fh.read(_CHUNK):
        h.update(chunk)
        n += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return h.hexdigest(), n


def sha256_file(path: Path) -> tuple[str, int]:
    with path.open("rb") as fh:
        return sha256_stream(fh)


def describe(m: Manifest) -> str:
    """One line about an archive: when, which weibao, what state, how much."""
    created = m.created.astimezone().isoformat(timespec="seconds") if isinstance(m.created, datetime) else m.created
    rev = m.state.revision or "?"
    return (f"created {created} by weibao {m.weibao}; state {m.state.kind} at schema {rev}; {len(m.entries)} "
            f"entries, {m.total_size / 1e6:.1f} MB; data directory was {m.data_dir}")
