"""Pages from Jinja2 templates (autoescaped), in the person's language, with the console's security headers.

``page`` renders a whole page, or only its ``main`` block for a background refresh (the same template,
so the refreshed part cannot differ from a reload). Times are shown in contract time (Asia/Shanghai).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from weibao.collector.access.sessions import Session
from weibao.collector.console import i18n
from weibao.collector.console.permissions import Perm, can
from weibao.collector.console.web import LANG_COOKIE, SECURITY_HEADERS, is_partial, settings
from weibao.collector.http.deps import context
from weibao.core.inspection.i18n import duration, number
from weibao.core.timeutil import SHANGHAI

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("weibao.collector.console", "templates"),
    autoescape=True,  # device names, notes, sysDescr are untrusted text
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def lang_of(request: Request) -> i18n.Lang:
    return "en" if request.cookies.get(LANG_COOKIE) == "en" else "zh"


def when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return value.astimezone(SHANGHAI).strftime(fmt) if value is not None else "—"


def when_ms(ms: int | None) -> str:
    return when(datetime.fromtimestamp(ms / 1000, SHANGHAI)) if ms is not None else "—"


def span(delta: timedelta, lang: i18n.Lang) -> str:
    """A length of time as people read it: ``2天3小时``, ``45分`` / ``2 d 3 h``, ``45 min``."""
    s = int(abs(delta.total_seconds()))
    if s < 3600:
        return f"{s // 60} min" if lang == "en" else f"{s // 60}分"
    return duration(s, lang)


def page(request: Request, session: Session | None, template: str, *, status: int = 200,
         **values: Any) -> HTMLResponse:
    lang = lang_of(request)
    ctx = context(request)

    def t(key: str, **kw: object) -> str:
        return i18n.t(key, lang, **kw)

    data: dict[str, Any] = {
        "lang": lang, "html_lang": "en" if lang == "en" else "zh-CN", "t": t, "label": lambda k: i18n.label(k, lang),
        "session": session, "user": session.account if session else None,
        "csrf": session.csrf if session else "",
        "can": (lambda p: can(session.account.role, Perm(p))) if session else (lambda _p: False),
        "when": when, "when_ms": when_ms, "num": number, "span": lambda d: span(d, lang),
        "refresh_s": int(settings(ctx).refresh_s), "path": request.url.path,
        "query": request.url.query, **values,
    }
    tmpl = _ENV.get_template(template)
    if is_partial(request) and "main" in tmpl.blocks:
        html = "".join(tmpl.blocks["main"](tmpl.new_context(data)))
    else:
        html = tmpl.render(data)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
