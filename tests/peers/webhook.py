"""A small real HTTP server on loopback, in a thread, that records every POST and answers as told."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Post:
    path: str
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookPeer:
    """Records POSTs; answers ``status``/``answer`` (JSON), or the next of ``script`` while it lasts."""

    def __init__(self, *, status: int = 200, answer: Any = None) -> None:
        self.status = status
        self.answer = {"errcode": 0, "errmsg": "ok"} if answer is None else answer
        self.script: deque[tuple[int, Any]] = deque()
        self.posts: list[Post] = []
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
                with peer.lock:
                    peer.posts.append(Post(parts.path, query, parts.query, dict(self.headers.items()), body))
                    status, answer = peer.script.popleft() if peer.script else (peer.status, peer.answer)
                out = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> WebhookPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def received(self) -> list[Post]:
        with self.lock:
            return list(self.posts)
