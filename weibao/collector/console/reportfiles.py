"""The report files under the data directory's ``reports/`` folder: listed, and opened by a checked name.

A report is any file there ending in .html, .pdf, .xlsx or .json (sub-folders included); its kind and
day come from its name (``inspection-2026-12-03.html``, ``weekly-2026-W49.pdf``, ...). ``open_report``
accepts only a name that ``list_reports`` would list: nothing outside the folder, no hidden file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FOLDER = "reports"
TYPES = {".html": "text/html; charset=utf-8", ".pdf": "application/pdf", ".json": "application/json",
         ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
KINDS = ("inspection", "weekly", "monthly", "quarterly", "annual", "fault")
_DAY = re.compile(r"(\d{4}-\d{2}(?:-\d{2}|-W\d{2}|-Q\d)?|\d{4})")


@dataclass(frozen=True, slots=True)
class ReportFile:
    name: str  # path relative to the reports folder, with "/"
    kind: str  # one of KINDS, or "other"
    period: str  # the day, week, month... from the name, or ""
    size: int
    mtime: float

    @property
    def media_type(self) -> str:
        return TYPES[Path(self.name).suffix.lower()]


def reports_dir(data_dir: Path) -> Path:
    return data_dir / FOLDER


def _describe(root: Path, path: Path) -> ReportFile:
    rel = path.relative_to(root).as_posix()
    stem = path.name.lower()
    kind = next((k for k in KINDS if stem.startswith(k) or f"/{k}" in f"/{rel.lower()}"), "other")
    found = _DAY.search(path.name)
    st = path.stat()
    return ReportFile(rel, kind, found.group(1) if found else "", st.st_size, st.st_mtime)


def list_reports(data_dir: Path) -> list[ReportFile]:
    """Every report file, newest first (by period in the name, then by modification time)."""
    root = reports_dir(data_dir)
    if not root.is_dir():
        return []
    found = [_describe(root, p) for p in root.rglob("*")
             if p.is_file() and p.suffix.lower() in TYPES
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(found, key=lambda r: (r.period, r.mtime, r.name), reverse=True)


def open_report(data_dir: Path, name: str) -> tuple[ReportFile, Path] | None:
    """The listed report called ``name`` and its path, or None."""
    for r in list_reports(data_dir):
        if r.name == name:
            return r, reports_dir(data_dir) / r.name
    return None
