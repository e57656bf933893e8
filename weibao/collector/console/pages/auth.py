"""Login, logout, the language switch and one's own password.

The login form carries a random value that must equal a cookie set with the form (a login cannot be
forged from another site). A good login always starts a new session with a new id, whatever cookie came
with it (no session fixation), and ends the session that cookie named.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from weibao.collector.access import accounts, audit, sessions, throttle
from weibao.collector.access.errors import AccessError
from weibao.collector.access.sessions import Session
from weibao.collector.console.render import page, when_ms
from weibao.collector.console.web import (
    COOKIE,
    LANG_COOKIE,
    SECURITY_HEADERS,
    Anyone,
    Denied,
    LoginRequired,
    clear_cookie,
    current,
    form,
    limits,
    local_path,
    read_form,
    set_cookie,
    settings,
)
from weibao.collector.http.deps import client_address, context
from weibao.core.timeutil import now_ms

router = APIRouter()
PRE_COOKIE = "wb_login"


def redirect(request: Request, url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


async def optional_session(request: Request) -> Session | None:
    try:
        return await current(request)
    except LoginRequired:
        return None


def login_limits(request: Request) -> throttle.Limits:
    c = settings(context(request)).login
    return throttle.Limits(account_failures=c.account_failures, address_failures=c.address_failures,
                           window_ms=int(c.window_s * 1000), lockout_ms=int(c.lockout_s * 1000))


def _login_page(request: Request, *, nxt: str, error: str = "", status: int = 200, name: str = "",
                **values: object) -> Response:
    pre = secrets.token_urlsafe(24)
    resp = page(request, None, "login.html", status=status, pre=pre, next=nxt, error=error, name=name, **values)
    set_cookie(request, resp, PRE_COOKIE, pre)
    return resp


@router.get("/login")
async def login_form(request: Request, who: Annotated[Session | None, Depends(optional_session)]) -> Response:
    nxt = local_path(request.query_params.get("next"))
    if who is not None:
        return redirect(request, nxt)
    return _login_page(request, nxt=nxt)


@router.post("/login")
async def login(request: Request) -> Response:
    ctx = context(request)
    engine = ctx.engine
    data = await read_form(request, max_fields=20)
    pre, sent = request.cookies.get(PRE_COOKIE, ""), data.get("pre")
    if not pre or not isinstance(sent, str) or not secrets.compare_digest(pre, sent):
        raise Denied(403, "csrf")
    name = str(data.get("name") or "").strip()[:64]
    password = str(data.get("password") or "")
    nxt = local_path(str(data.get("next") or ""))
    address = client_address(request)
    now = now_ms()
    lim = login_limits(request)

    def note(action: str, ok: bool, detail: str = "", role: str = "") -> None:
        audit.record(engine, actor=name or "-", role=role, address=address, via=audit.Via.CONSOLE, action=action,
                     target=name, ok=ok, detail=detail, at_ms=now)

    # counted before the password is checked: parallel attempts cannot outrun the limit
    locked = await run_in_threadpool(throttle.attempt, engine, name, address, lim, now)
    if locked is not None:
        await run_in_threadpool(note, "login.locked", False, f"locked until {when_ms(locked)}")
        return _login_page(request, nxt=nxt, error="locked", status=429, name=name, until=when_ms(locked))
    account = await run_in_threadpool(accounts.authenticate, engine, name, password)
    if account is None:
        started = await run_in_threadpool(throttle.failure, engine, name, address, lim, now)
        await run_in_threadpool(note, "login.failed", False, "lockout started" if started else "")
        if started:
            return _login_page(request, nxt=nxt, error="locked", status=429, name=name,
                               until=when_ms(now + lim.lockout_ms))
        return _login_page(request, nxt=nxt, error="bad_login", status=401, name=name)
    old = request.cookies.get(COOKIE)
    if old:
        await run_in_threadpool(sessions.end, engine, old)
    await run_in_threadpool(throttle.success, engine, name, address, now)
    sid = await run_in_threadpool(sessions.start, engine, account, address)
    await run_in_threadpool(note, "login", True, "", account.role.value)
    resp = redirect(request, "/account" if account.must_change else nxt)
    set_cookie(request, resp, COOKIE, sid, max_age=int(limits(ctx).absolute_s))
    clear_cookie(request, resp, PRE_COOKIE)
    return resp


@router.post("/logout")
async def logout(request: Request, who: Anyone) -> Response:
    await form(request, who)
    engine = context(request).engine
    await run_in_threadpool(sessions.end, engine, who.id)
    await run_in_threadpool(lambda: audit.record(
        engine, actor=who.account.name, role=who.account.role.value, address=client_address(request),
        via=audit.Via.CONSOLE, action="logout", target=who.account.name))
    resp = redirect(request, "/login")
    clear_cookie(request, resp, COOKIE)
    return resp


@router.get("/lang/{code}")
async def language(request: Request, code: str) -> Response:
    resp = redirect(request, local_path(request.query_params.get("next")))
    set_cookie(request, resp, LANG_COOKIE, "en" if code == "en" else "zh", max_age=365 * 86400)
    return resp


@router.get("/account")
async def account_page(request: Request, who: Anyone) -> Response:
    return page(request, who, "account.html", error="", done=False)


@router.post("/account")
async def change_password(request: Request, who: Anyone) -> Response:
    data = await form(request, who)
    engine = context(request).engine
    name = who.account.name
    old, new, again = (str(data.get(k) or "") for k in ("current", "new", "again"))
    address = client_address(request)
    now = now_ms()

    def note(ok: bool, detail: str = "") -> None:
        audit.record(engine, actor=name, role=who.account.role.value, address=address, via=audit.Via.CONSOLE,
                     action="user.passwd", target=name, ok=ok, detail=detail, at_ms=now)

    lim = login_limits(request)
    if await run_in_threadpool(throttle.attempt, engine, name, address, lim, now) is not None:
        return page(request, who, "account.html", status=429, error="locked", done=False)
    if await run_in_threadpool(accounts.authenticate, engine, name, old) is None:
        await run_in_threadpool(throttle.failure, engine, name, address, lim, now)
        await run_in_threadpool(note, False, "wrong current password")
        return page(request, who, "account.html", status=422, error="bad_current", done=False)
    await run_in_threadpool(throttle.success, engine, name, address, now)
    if new != again:
        return page(request, who, "account.html", status=422, error="mismatch", done=False)
    try:
        await run_in_threadpool(accounts.set_password, engine, name, new)
    except AccessError as exc:
        return page(request, who, "account.html", status=422, error="weak", detail=str(exc), done=False)
    await run_in_threadpool(sessions.end_all, engine, who.account.id, keep=who.id)
    await run_in_threadpool(note, True)
    return redirect(request, "/")
