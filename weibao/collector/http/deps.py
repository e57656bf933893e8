"""What every route shares: the context, authentication and roles as FastAPI dependencies, bodies, answers.

Authentication happens in one place (``authenticate``): no or an unknown bearer token is 401 (with
``WWW-Authenticate: Bearer``), a known token of the wrong role is 403 (``require``). Every refusal is a
``Refused`` raised anywhere below a route; the handler ``install``s turns it into its JSON answer.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from weibao.collector import auth
from weibao.collector.access.audit import Via, record
from weibao.collector.auth import Principal, Role
from weibao.collector.errors import Refused
from weibao.collector.http.context import Context

log = logging.getLogger(__name__)


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


# the client's data is kept by no cache on the way (a proxy, the browser's disk)
NO_STORE = {"Cache-Control": "no-store"}
# an HTML report shown in a browser: its own inline styles and images, never a script, nothing fetched
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; sandbox"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status_code=status,
                    media_type="application/json", headers={**NO_STORE, **(headers or {})})


def refused_response(exc: Refused) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return json_response(exc.body(), exc.status, headers)


def install(app: FastAPI) -> None:
    """Answer every ``Refused`` with its status and JSON body."""

    async def handler(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return refused_response(exc)

    app.add_exception_handler(Refused, handler)

    async def unavailable(_request: Request, exc: Exception) -> Response:
        # PostgreSQL away (or SQLite locked) anywhere below a route, e.g. the token lookup: retry later
        log.warning("state store unavailable: %s", getattr(exc, "orig", exc))
        return refused_response(Refused(503, "state_unavailable", "state store unavailable, retry later"))

    app.add_exception_handler(OperationalError, unavailable)


async def authenticate(request: Request) -> Principal:
    """The holder of the request's bearer token; 401 without one or with one unknown or revoked. With
    mutual TLS (``tls.client_ca_file``) an agent's token counts only on a connection whose verified client
    certificate names that agent (403 otherwise): a stolen token alone is not enough."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(401, "unauthorized", "a bearer token is required")
    ctx = context(request)
    found = await run_in_threadpool(auth.verify, ctx.engine, token.strip())
    if found is None:
        raise Refused(401, "unauthorized", "unknown or revoked token")
    tls = ctx.config.tls
    if found.role == Role.AGENT and tls is not None and tls.client_ca_file is not None:
        names = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_names") or []
        if found.name not in names:
            raise Refused(403, "certificate_mismatch", f"agent {found.name}'s token needs a client certificate "
                          f"naming {found.name} (common name or DNS name)"
                          + ("; this connection presented none" if not names else ""))
    return found


def require(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the authenticated holder, refused with 403 unless it has one of ``roles``."""
    names = " or ".join(f"an {r.value}'s" if r.value[0] in "aeiou" else f"a {r.value}'s" for r in roles)

    async def dependency(request: Request) -> Principal:
        who = await authenticate(request)
        if who.role not in roles:
            raise Refused(403, "forbidden", f"this needs {names} token")
        return who

    return dependency


def client_address(request: Request) -> str:
    """The peer's address as the server saw it (the audit log's "from where")."""
    return request.client.host if request.client is not None else ""


async def audit(request: Request, who: Principal, action: str, target: str, *, ok: bool = True,
                detail: str = "") -> None:
    """Record an action taken with a token in the audit log (the console records its own)."""
    await run_in_threadpool(lambda: record(context(request).engine, actor=who.name, role=who.role.value,
                                           address=client_address(request), via=Via.API, action=action,
                                           target=target, ok=ok, detail=detail))


Ctx = Annotated[Context, Depends(context)]
Engineer = Annotated[Principal, Depends(require(Role.ENGINEER))]
# people: engineers and the client (reading tickets, opening requests; what each may do is the actions table's)
Person = Annotated[Principal, Depends(require(Role.ENGINEER, Role.CLIENT))]
Agent = Annotated[Principal, Depends(require(Role.AGENT))]
Anyone = Annotated[Principal, Depends(authenticate)]


# ``\u0000`` in JSON text: the escape itself, not an escaped backslash followed by "u0000" (``\\u0000``)
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


async def read_body(request: Request, limit: int, *, nul_ok: bool = False) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes: from
    Content-Length before reading anything, else while counting the streamed chunks; refused with 422 when
    it carries a NUL (raw or, in JSON, ``\\u0000``) unless ``nul_ok``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise Refused(400, "bad_request", "Content-Length is not a number")
        if int(declared) > limit:
            raise Refused(413, "too_large", f"body of {declared} bytes exceeds {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, "too_large", f"body exceeds {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect as exc:  # gone (or closed by the body timeout): nobody reads the answer
        raise Refused(400, "disconnected", "the connection closed before the body was complete") from exc
    body = b"".join(chunks)
    if not nul_ok and (b"\x00" in body or (b"\\u0000" in body and _JSON_NUL.search(body))):
        raise Refused(422, "invalid", "the body contains NUL (U+0000), which no text may hold")
    return body
