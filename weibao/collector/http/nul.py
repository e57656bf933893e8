"""NUL refused at the door: no text a request carries may hold the character U+0000.

PostgreSQL's text cannot hold it (the statement fails), a terminal or a report shows it as nothing, and
nothing weibao keeps ever needs it. A path or query string that carries one (``%00``) is answered 400
here, before any route runs; a JSON body that carries one is refused by ``deps.read_body`` (422), except
the ingest batch, whose event data is kept as JSON text, where an escaped NUL is harmless; a console form
by ``console.web.read_form``.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

_BODY = json.dumps({"error": "the request's path or query string contains NUL (%00), which no text may hold",
                    "reason": "bad_request"}).encode()


def carries_nul(raw: bytes) -> bool:
    """Whether URL-encoded ``raw`` (a path, a query string) decodes to a NUL anywhere."""
    return b"\x00" in raw or b"%00" in raw


class RefuseNul:
    """ASGI middleware: 400 for a request whose path or query string decodes to a NUL."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (carries_nul(scope.get("raw_path") or b"")
                                        or carries_nul(scope.get("query_string") or b"")):
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(_BODY)).encode())]})
            await send({"type": "http.response.body", "body": _BODY})
            return
        await self.app(scope, receive, send)
