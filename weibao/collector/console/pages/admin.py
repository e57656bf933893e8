"""Admin pages: accounts (add, role, disable / enable, a new one-time password) and the audit log.

A generated password is shown once, on the page that answers the change, and must be changed at the
first login. Disabling a user or setting a password ends that user's sessions at once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from weibao.collector.access import accounts, audit, sessions
from weibao.collector.access.accounts import UserRole
from weibao.collector.access.errors import AccessError
from weibao.collector.access.sessions import Session
from weibao.collector.console.render import page
from weibao.collector.console.web import Auditor, Denied, UserAdmin, form
from weibao.collector.http.deps import client_address, context

router = APIRouter()
AUDIT_PAGE = 200
CHANGES = ("role", "disable", "enable", "password")


async def _users(request: Request, who: Session, *, status: int = 200, error: str = "", shown: str = "",
                 shown_for: str = "") -> Response:
    users = await run_in_threadpool(accounts.listing, context(request).engine)
    return page(request, who, "users.html", status=status, users=users, roles=list(UserRole), error=error,
                shown=shown, shown_for=shown_for)


@router.get("/admin/users")
async def users(request: Request, who: UserAdmin) -> Response:
    return await _users(request, who)


def _note(request: Request, who: Session, action: str, target: str, detail: str = "", ok: bool = True) -> None:
    audit.record(context(request).engine, actor=who.account.name, role=who.account.role.value,
                 address=client_address(request), via=audit.Via.CONSOLE, action=action, target=target, ok=ok,
                 detail=detail)


@router.post("/admin/users")
async def add_user(request: Request, who: UserAdmin) -> Response:
    data = await form(request, who)
    name = str(data.get("name") or "").strip()
    role = str(data.get("role") or "")
    if role not in set(UserRole):
        return await _users(request, who, status=422, error=f"role: one of {', '.join(UserRole)}")
    password = accounts.generate_password()
    try:
        await run_in_threadpool(accounts.add, context(request).engine, name, UserRole(role), password,
                                must_change=True)
    except AccessError as exc:
        return await _users(request, who, status=422, error=f"name: {exc}")
    await run_in_threadpool(_note, request, who, "user.add", name, f"role {role}")
    return await _users(request, who, shown=password, shown_for=name)


@router.post("/admin/users/{name}/{change}")
async def change_user(request: Request, who: UserAdmin, name: str, change: str) -> Response:
    data = await form(request, who)
    if change not in CHANGES:
        raise Denied(404, f"no change {change!r}")
    engine = context(request).engine
    shown = ""
    detail = ""
    try:
        if change == "role":
            role = str(data.get("role") or "")
            if role not in set(UserRole):
                return await _users(request, who, status=422, error=f"role: one of {', '.join(UserRole)}")
            if name == who.account.name and role != UserRole.ADMIN:
                return await _users(request, who, status=409, error="role: an admin cannot demote themself")
            account: Any = await run_in_threadpool(accounts.set_role, engine, name, UserRole(role))
            detail = f"role {role}"
        elif change in ("disable", "enable"):
            if name == who.account.name:
                return await _users(request, who, status=409, error="name: an admin cannot disable themself")
            account = await run_in_threadpool(accounts.set_disabled, engine, name, change == "disable")
        else:
            shown = accounts.generate_password()
            account = await run_in_threadpool(lambda: accounts.set_password(engine, name, shown, must_change=True))
    except AccessError as exc:
        raise Denied(404, str(exc)) from exc
    if change != "enable" and change != "role":
        await run_in_threadpool(sessions.end_all, engine, account.id)
    await run_in_threadpool(_note, request, who, f"user.{change}", name, detail)
    return await _users(request, who, shown=shown, shown_for=name if shown else "")


@router.get("/admin/audit")
async def audit_log(request: Request, who: Auditor) -> Response:
    q = request.query_params
    before = q.get("before") or ""
    if before and not (before.isascii() and before.isdigit() and len(before) <= 18):
        raise Denied(422, "before: an entry number")
    actor, action = (q.get("actor") or "").strip()[:128], (q.get("action") or "").strip()[:64]
    found = await run_in_threadpool(lambda: audit.entries(
        context(request).engine, actor=actor or None, action=action or None,
        before_id=int(before) if before else None, limit=AUDIT_PAGE))
    return page(request, who, "audit.html", entries=found, actor=actor, action=action,
                more=len(found) == AUDIT_PAGE)
