"""Generated reports, engineers' notes and scheduled runs, in the state store; report files under the data directory.

Files live in ``DATA/reports/<kind>/<period>/`` (mode 0640, folders 0750), written atomically; the
``reports`` table records each file (kind, period, language, format, path, size, SHA-256, when). The
quarterly archive needs them all, so nothing here deletes a report. Notes are the text engineers enter:
``work_done`` / ``plan_next_week`` for a week, ``cause`` / ``measures`` / ``prevention`` for a fault.
``report_runs`` remembers what the scheduler did, so a missed run is caught up after a restart and a
failed one is retried.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Engine, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from weibao.collector.state.models import Base
from weibao.core.timeutil import from_ms, to_ms

FILE_MODE = 0o640
DIR_MODE = 0o750
TABLES = ("reports", "report_notes", "report_runs")
NOTE_FIELDS: Mapping[str, tuple[str, ...]] = {"weekly": ("work_done", "plan_next_week"),
                                              "fault": ("cause", "measures", "prevention")}


class ReportRow(Base):
    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_kind_period", "kind", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(64))
    lang: Mapped[str] = mapped_column(String(8))
    format: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    generated_ms: Mapped[int] = mapped_column(BigInteger, index=True)


class ReportNoteRow(Base):
    __tablename__ = "report_notes"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    period: Mapped[str] = mapped_column(String(64), primary_key=True)
    fields: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class ReportRunRow(Base):
    __tablename__ = "report_runs"

    job: Mapped[str] = mapped_column(String(16), primary_key=True)
    period: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # done, failed
    attempts: Mapped[int] = mapped_column(Integer)
    next_ms: Mapped[int] = mapped_column(BigInteger)
    last_error: Mapped[str] = mapped_column(Text, default="")
    updated_ms: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True, slots=True)
class ReportFile:
    format: str
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class GeneratedReport:
    """One generated report as the console lists it: the newest file of each format."""

    kind: str
    period: str
    lang: str
    generated_at: datetime
    files: tuple[ReportFile, ...]

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(f.format for f in self.files)


@dataclass(frozen=True, slots=True)
class Run:
    job: str
    period: str
    status: str
    attempts: int
    next_at: datetime
    last_error: str


def _now() -> datetime:
    return datetime.now(UTC)


def _write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ReportStore:
    """Report files and their records, notes, and the scheduler's runs."""

    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine = engine
        self.root = Path(data_dir) / "reports"

    def create_schema(self) -> None:
        """Create the tables if missing (what migration 0005 does in production)."""
        Base.metadata.create_all(self.engine, tables=[Base.metadata.tables[t] for t in TABLES])

    # -- files ---------------------------------------------------------------------------------------------
    def folder(self, kind: str, period: str) -> Path:
        return self.root / kind / period

    def save(self, kind: str, period: str, lang: str, files: Mapping[str, tuple[str, bytes]],
             now: datetime | None = None) -> GeneratedReport:
        """Write ``files`` (format -> (file name, content)) and record them; returns what was written."""
        folder = self.folder(kind, period)
        folder.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        for p in (self.root, self.root / kind, folder):
            os.chmod(p, DIR_MODE)
        at = now or _now()
        written = []
        for fmt, (name, data) in files.items():
            path = folder / name
            _write_bytes(path, data)
            written.append(ReportFile(fmt, path, len(data), hashlib.sha256(data).hexdigest()))
        with Session(self.engine) as s, s.begin():
            for f in written:
                s.add(ReportRow(kind=kind, period=period, lang=lang, format=f.format, path=str(f.path),
                                size=f.size, sha256=f.sha256, generated_ms=to_ms(at)))
        return GeneratedReport(kind, period, lang, at, tuple(written))

    def list(self, *, kind: str | None = None, period: str | None = None) -> list[GeneratedReport]:
        """What was generated, newest first: one entry per (kind, period, language) with its newest files."""
        q = select(ReportRow).order_by(ReportRow.generated_ms.desc(), ReportRow.id.desc())
        if kind is not None:
            q = q.where(ReportRow.kind == kind)
        if period is not None:
            q = q.where(ReportRow.period == period)
        groups: dict[tuple[str, str, str], dict[str, ReportRow]] = {}
        with Session(self.engine) as s:
            for r in s.scalars(q):
                groups.setdefault((r.kind, r.period, r.lang), {}).setdefault(r.format, r)
        out = []
        for (k, p, lang), rows in groups.items():
            files = tuple(ReportFile(r.format, Path(r.path), r.size, r.sha256)
                          for r in sorted(rows.values(), key=lambda r: r.format))
            newest = max(r.generated_ms for r in rows.values())
            out.append(GeneratedReport(k, p, lang, from_ms(newest), files))
        out.sort(key=lambda g: g.generated_at, reverse=True)
        return out

    # -- notes ---------------------------------------------------------------------------------------------
    def notes(self, kind: str, period: str) -> dict[str, Any]:
        """The engineers' text for a report: every field of the kind (None when not written), who, when."""
        with Session(self.engine) as s:
            row = s.get(ReportNoteRow, (kind, period))
            fields = json.loads(row.fields) if row is not None else {}
            out: dict[str, Any] = {f: fields.get(f) for f in NOTE_FIELDS[kind]}
            out["updated_by"] = row.updated_by if row is not None else None
            out["updated_at"] = from_ms(row.updated_ms).isoformat() if row is not None else None
        return out

    def put_notes(self, kind: str, period: str, fields: Mapping[str, str | None], who: str,
                  now: datetime | None = None) -> dict[str, Any]:
        """Store the given fields (others keep their text); returns the notes as stored."""
        with Session(self.engine) as s, s.begin():
            row = s.get(ReportNoteRow, (kind, period), with_for_update=True)
            merged = json.loads(row.fields) if row is not None else {}
            merged.update({k: v for k, v in fields.items() if k in NOTE_FIELDS[kind]})
            at = to_ms(now or _now())
            if row is None:
                s.add(ReportNoteRow(kind=kind, period=period, fields=json.dumps(merged, ensure_ascii=False),
                                    updated_by=who, updated_ms=at))
            else:
                row.fields = json.dumps(merged, ensure_ascii=False)
                row.updated_by = who
                row.updated_ms = at
        return self.notes(kind, period)

    # -- scheduled runs ------------------------------------------------------------------------------------
    def run(self, job: str, period: str) -> Run | None:
        with Session(self.engine) as s:
            r = s.get(ReportRunRow, (job, period))
            return None if r is None else Run(r.job, r.period, r.status, r.attempts, from_ms(r.next_ms), r.last_error)

    def record_run(self, job: str, period: str, *, ok: bool, error: str = "", next_at: datetime,
                   now: datetime | None = None) -> Run:
        with Session(self.engine) as s, s.begin():
            row = s.get(ReportRunRow, (job, period), with_for_update=True)
            if row is None:
                row = ReportRunRow(job=job, period=period, status="", attempts=0, next_ms=0, last_error="",
                                   updated_ms=0)
                s.add(row)
            row.status = "done" if ok else "failed"
            row.attempts += 1
            row.next_ms = to_ms(next_at)
            row.last_error = error[:2000]
            row.updated_ms = to_ms(now or _now())
            return Run(job, period, row.status, row.attempts, next_at, row.last_error)


def list_reports(engine: Engine, data_dir: Path, *, kind: str | None = None) -> list[GeneratedReport]:
    """The generated reports (kind, period, language, formats, generated_at, files), newest first: what
    the web console lists and serves."""
    return ReportStore(engine, data_dir).list(kind=kind)
