"""The web console, served by the collector at ``/`` beside the API (``/api/v1``).

Server-rendered pages (Jinja2) with a few lines of script each; every asset, the chart library (uPlot)
included, is served from ``static/`` in this package: nothing is loaded from elsewhere. People log in with
console accounts (``weibao.collector.access``); pages never accept an API token, the API never a session.

    web          the session cookie, login and permission dependencies, CSRF, refusals
    render       templates, language, security headers
    permissions  role -> what it may do (one table)
    status       device status and clock colours, the same words everywhere
    charts       which rollups a device page draws
    reportfiles  the report files of the data directory
    pages/       one router per resource
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from weibao.collector.console.pages import ROUTERS
from weibao.collector.console.render import page
from weibao.collector.console.web import SECURITY_HEADERS, Denied, LoginRequired, Redirect, is_partial, login_url

STATIC = Path(__file__).parent / "static"
_AGAIN = '<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0"><title>weibao</title>'


class _Static(StaticFiles):
    """Vendored assets: cached for a day, never sniffed."""

    def file_response(self, *args: object, **kwargs: object) -> Response:
        resp = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        resp.headers["Cache-Control"] = "max-age=86400"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp


def install(app: FastAPI) -> None:
    """Add the console's pages, its static files and the answers to its refusals."""

    async def login_required(request: Request, _exc: Exception) -> Response:
        if is_partial(request) or request.method != "GET":
            return PlainTextResponse("login required", status_code=401, headers=SECURITY_HEADERS)
        if request.headers.get("sec-fetch-site") == "cross-site":
            # a link followed from elsewhere (a notification in webmail): the SameSite=Strict cookie stayed
            # behind; load the page again from this site, which sends it (the login form if there is none)
            return HTMLResponse(_AGAIN, headers=SECURITY_HEADERS)
        return RedirectResponse(login_url(request), status_code=303, headers=SECURITY_HEADERS)

    async def redirect(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Redirect)
        return RedirectResponse(exc.url, status_code=303, headers=SECURITY_HEADERS)

    async def denied(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Denied)
        session = getattr(request.state, "session", None)
        return page(request, session, "error.html", status=exc.status, status_code=exc.status, message=exc.message)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Redirect, redirect)
    app.add_exception_handler(Denied, denied)
    app.mount("/static", _Static(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
