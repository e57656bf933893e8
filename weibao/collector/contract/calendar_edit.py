"""Add a year of national holidays to a site calendar file, keeping the file's comments and layout.

The file is read and validated first (``file:line: key: message`` for any problem, nothing written), the
year goes into its ``years`` mapping in the shape of the shipped data, days that fall in a neighbouring
year (a make-up Saturday in late December for New Year's Day) into its top-level ``holidays`` /
``working_days``, and the result is validated again, together with the shipped data, before it replaces
the file (atomically, with the old file's mode).
"""

from __future__ import annotations

import io
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from weibao.collector.contract.calendar_files import SHIPPED_HOLIDAYS, load_calendar
from weibao.collector.contract.notice import Notice
from weibao.core.errors import ConfigError, Problem

NEW_FILE_HEADER = """\
# The site's working calendar, applied after the national holidays shipped with weibao (see the README's
# calendar section): national years added from the State Council's notice, local holidays and working days.
"""


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.width = 120
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _days(days: dict[date, str]) -> CommentedSeq:
    seq = CommentedSeq()
    for d, name in sorted(days.items()):
        entry = CommentedMap(date=d, name=name)
        entry.fa.set_flow_style()
        seq.append(entry)
    return seq


def _block(doc: CommentedMap, key: str, empty: Any) -> Any:
    """``doc[key]`` as a block-style collection (an empty ``{}`` / ``[]`` written inline becomes a block)."""
    if doc.get(key) is None:
        doc[key] = empty
    value = doc[key]
    value.fa.set_block_style()
    return value


def shipped_years() -> frozenset[int]:
    return load_calendar().covered_years


def add_year(path: Path, notice: Notice, *, replace: bool = False, source: str | None = None) -> str:
    """The new text of ``path`` with ``notice``'s year added (the file is not written); ConfigError refuses."""
    year = notice.year
    exists = path.exists()
    if exists:
        load_calendar(path, base=None)  # the file as it is must be valid: problems name its lines
        text = path.read_text(encoding="utf-8")
    else:
        text = NEW_FILE_HEADER
    doc = _yaml().load(text) if text.strip() else None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise ConfigError([Problem(str(path), 1, "", "a calendar file is a mapping")])
    years = _block(doc, "years", CommentedMap())
    if year in years and years[year] is not None and not replace:
        line = years.lc.key(year)[0] + 1
        raise ConfigError([Problem(str(path), line, f"years.{year}", f"{year} is in this file already; "
                                   "--replace replaces it")])
    if year in shipped_years() and not replace:
        raise ConfigError([Problem(str(path), None, f"years.{year}", f"{year} is in the calendar shipped with weibao "
                                   f"({SHIPPED_HOLIDAYS.name}); a site file would override it: --replace")])
    inside = CommentedMap()
    inside["holidays"] = _days({d: n for d, n in notice.holidays.items() if d.year == year})
    inside["working_days"] = _days({d: n for d, n in notice.working_days.items() if d.year == year})
    years[year] = inside
    if source:
        years.yaml_set_comment_before_after_key(year, before=source, indent=2)
    outside_off = {d: f"{n} ({year})" for d, n in notice.holidays.items() if d.year != year}
    outside_work = {d: f"{n} ({year})" for d, n in notice.working_days.items() if d.year != year}
    for key, extra in (("holidays", outside_off), ("working_days", outside_work)):
        if extra:
            seq = _block(doc, key, CommentedSeq())
            seq.extend(_days(extra))
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def write_checked(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` once it validates as a calendar file on top of the shipped data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o640
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            load_calendar(tmp)
        except ConfigError as exc:  # what we wrote must load: say where, under the file's own name
            raise ConfigError([Problem(str(path), p.line, p.key, p.message) for p in exc.problems]) from exc
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

