"""Render an Inspection as one self-contained, printable HTML page (zh by default, en on request) and write it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jinja2

from weibao.core.files import write_atomic
from weibao.core.inspection.evaluate import LOCAL_TZ
from weibao.core.inspection.i18n import LANGS, Lang, duration, number, t
from weibao.core.inspection.model import SEVERITIES_WORST_FIRST, Inspection, Severity

log = logging.getLogger(__name__)

INSPECTOR = "weibao"
FILE_MODE = 0o640

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("weibao.core.inspection", "templates"),
    autoescape=True,  # device output (configs, names, errors) is untrusted text
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _diff_lines(diff: str) -> list[tuple[str, str]]:
    """Each line of a unified diff with its CSS class (the template escapes the text)."""
    out = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            cls = "hdr"
        elif line.startswith("@@"):
            cls = "hunk"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        else:
            cls = ""
        out.append((cls, line))
    return out


def _pct(value: float | None) -> float:
    return 0.0 if value is None else max(0.0, min(100.0, value))


def render_html(inspection: Inspection, *, lang: Lang = "zh", site: str) -> str:
    """The inspection report as one HTML document with inline CSS and nothing loaded from elsewhere."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}")
    worst: dict[tuple[str, str], Severity] = {}
    for f in inspection.findings:
        if f.metric is None:
            continue
        key = (f.device, f.metric)
        if key not in worst or f.severity.rank > worst[key].rank:
            worst[key] = f.severity

    def level(device: str, metric: str) -> str:
        sev = worst.get((device, metric))
        return "ok" if sev is None else sev.value

    def tr(key: str, **values: Any) -> str:
        return t(key, lang, **values)

    context = {
        "lang": lang,
        "html_lang": "en" if lang == "en" else "zh-CN",
        "site": site,
        "inspector": INSPECTOR,
        "at_local": inspection.at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M"),
        "insp": inspection,
        "severities": SEVERITIES_WORST_FIRST,
        "t": tr,
        "num": number,
        "dur": lambda s: duration(s, lang),
        "pct": _pct,
        "level": level,
        "diff_lines": _diff_lines,
        "local": lambda ts: ts.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M"),
    }
    return _ENV.get_template("report.html.j2").render(context)


def report_name(inspection: Inspection, lang: Lang) -> str:
    day = inspection.at.astimezone(LOCAL_TZ).date().isoformat()
    return f"inspection-{day}.html" if lang == "zh" else f"inspection-{day}.{lang}.html"


def write_report(inspection: Inspection, out_dir: Path, lang: Lang = "zh", site: str = "") -> Path:
    """Write ``inspection-YYYY-MM-DD.html`` (``.en.html`` in English) and ``latest[.en].html``, mode 0640."""
    html = render_html(inspection, lang=lang, site=site)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    path = out_dir / report_name(inspection, lang)
    _write(path, html)
    _write(out_dir / ("latest.html" if lang == "zh" else f"latest.{lang}.html"), html)
    log.info("inspection report written to %s", path)
    return path


def _write(path: Path, text: str) -> None:
    write_atomic(path, text, mode=FILE_MODE)
