"""What every console page shares: the session cookie, the login dependency, permissions, CSRF, refusals.

A page needs a console session (the ``wb_session`` cookie) and never reads an ``Authorization`` header;
the API needs a bearer token and never reads the cookie. Without a live session a page answers 303 to
the login page (``next`` brings the person back), a background refresh answers 401. Every POST carries
the session's CSRF token in the form field ``csrf``; a missing or wrong one is 403 and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from weibao.collector.access import sessions
from weibao.collector.access.sessions import Session
from weibao.collector.config import ConsoleConfig
from weibao.collector.console.permissions import Perm, can
from weibao.collector.errors import Refused
from weibao.collector.http.context import Context
from weibao.collector.http.deps import context, read_body

COOKIE = "wb_session"
LANG_COOKIE = "wb_lang"
PARTIAL_HEADER = "x-weibao-partial"  # a page's background refresh: only its main part, not activity
MAX_FORM_BYTES = 64 * 1024

# every console answer: no caching of the client's data, no framing, no sniffing, no referrer outside
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
                                "object-src 'none'"),
}


class LoginRequired(Exception):  # a control-flow signal, answered by a redirect
    """No live session: the login page (or 401 for a background refresh)."""


class Redirect(Exception):  # answered by a 303
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class Denied(Exception):  # answered as a page with its status
    """A refusal shown as a page: 403 (not allowed), 404, 409 (the state does not allow it), 422."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def settings(ctx: Context) -> ConsoleConfig:
    return ctx.config.console


def limits(ctx: Context) -> sessions.Limits:
    c = settings(ctx)
    return sessions.Limits(idle_s=c.idle_timeout_s, absolute_s=c.absolute_timeout_s)


def is_partial(request: Request) -> bool:
    return request.headers.get(PARTIAL_HEADER) == "1"


def secure_cookies(request: Request) -> bool:
    """Cookies carry ``Secure`` when the console is reached over TLS."""
    c = settings(context(request))
    return (request.url.scheme == "https" or c.secure_cookies == "always"
            or (c.base_url or "").startswith("https://"))


def set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=secure_cookies(request))


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=secure_cookies(request))


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site (``/tickets?x``), else ``default``: no open redirect."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or "\n" in target:
        return default
    return target


async def current(request: Request) -> Session:
    """The live session of the request; LoginRequired otherwise. A background refresh is no activity."""
    sid = request.cookies.get(COOKIE, "")
    if not sid:
        raise LoginRequired
    ctx = context(request)
    found = await run_in_threadpool(sessions.resolve, ctx.engine, sid, limits(ctx), touch=not is_partial(request))
    if found is None:
        raise LoginRequired
    request.state.session = found
    if found.account.must_change and request.url.path not in ("/account", "/logout"):
        raise Redirect("/account")
    return found


def require(perm: Perm) -> Callable[[Request], Awaitable[Session]]:
    async def dependency(request: Request) -> Session:
        s = await current(request)
        if not can(s.account.role, perm):
            raise Denied(403, "forbidden")
        return s

    return dependency


async def read_form(request: Request, max_fields: int) -> FormData:
    """The posted form (``application/x-www-form-urlencoded``: the console sends no files), read with
    MAX_FORM_BYTES as its bound whether the body's length is declared or streamed in chunks."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Denied(415, "form_expected")
    try:
        body = await read_body(request, MAX_FORM_BYTES)
    except Refused as exc:
        raise Denied(exc.status, exc.reason) from exc
    try:
        text = body.decode("utf-8")
        pairs: list[tuple[str, str | UploadFile]] = [
            *parse_qsl(text, keep_blank_values=True, strict_parsing=False, max_num_fields=max_fields)]
    except (UnicodeDecodeError, ValueError) as exc:  # not UTF-8, or more fields than allowed
        raise Denied(400, "bad_form") from exc
    if any("\x00" in k or (isinstance(v, str) and "\x00" in v) for k, v in pairs):
        raise Denied(400, "bad_form")  # no text may hold a NUL (PostgreSQL's cannot)
    return FormData(pairs)


async def form(request: Request, session: Session) -> FormData:
    """The posted form after its CSRF token was checked (403 without the session's token)."""
    data = await read_form(request, max_fields=200)
    token = data.get("csrf")
    if not isinstance(token, str) or not sessions.csrf_ok(session, token):
        raise Denied(403, "csrf")
    return data


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login" if target == "/" else f"/login?next={quote(target, safe='')}"


Reader = Annotated[Session, Depends(require(Perm.READ))]
Maintainer = Annotated[Session, Depends(require(Perm.MAINTENANCE))]
UserAdmin = Annotated[Session, Depends(require(Perm.USERS))]
Auditor = Annotated[Session, Depends(require(Perm.AUDIT))]
Anyone = Annotated[Session, Depends(current)]
