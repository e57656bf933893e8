"""Send a notification to an HTTP webhook with httpx: our generic JSON, a DingTalk robot, a WeCom robot.

DingTalk custom robots with "加签" want ``timestamp`` (ms) and ``sign`` in the query string:
sign = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))). Both robots answer
HTTP 200 with ``{"errcode": 0}`` on success; a non-zero errcode is a failure. Their URLs carry the access
token, so no URL is ever written to a log line or an error message: the channel is named instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import ssl
import time
import urllib.parse
from typing import Any

import httpx

from weibao.collector.notify.config import WebhookChannel
from weibao.collector.notify.errors import LIBRARY_REDACTOR, DeliveryError, redact
from weibao.collector.notify.model import Message

log = logging.getLogger(__name__)

WECOM_MAX_BYTES = 4096  # WeCom refuses markdown content longer than this
DINGTALK_MAX_BYTES = 20000
# robot errcodes that mean "too many messages, try later"
_THROTTLED = {130101, 45009, 45033}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The URL-encoded ``sign`` query value of a DingTalk robot request."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def _truncate(text: str, max_bytes: int) -> str:
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    suffix = "\n…（内容过长已截断）"
    return raw[: max_bytes - len(suffix.encode())].decode(errors="ignore") + suffix


def payload(kind: str, message: Message) -> dict[str, Any]:
    """The JSON body for a channel type ("webhook", "dingtalk", "wecom")."""
    if kind == "dingtalk":
        text = f"### {message.title}\n\n{message.text()}"
        if message.extra_recipients:
            text += "\n\n" + " ".join(f"@{m}" for m in message.extra_recipients)
        return {"msgtype": "markdown",
                "markdown": {"title": message.title, "text": _truncate(text, DINGTALK_MAX_BYTES)},
                "at": {"atMobiles": list(message.extra_recipients), "isAtAll": False}}
    if kind == "wecom":
        mentions = "".join(f"<@{u}>" for u in message.extra_recipients)
        content = f"**{message.title}**\n{message.text()}"
        if mentions:
            content = f"{mentions}\n{content}"
        return {"msgtype": "markdown", "markdown": {"content": _truncate(content, WECOM_MAX_BYTES)}}
    body = message.as_json()
    body["extra_recipients"] = list(message.extra_recipients)
    return body


class WebhookTransport:
    """One webhook channel; keeps one HTTP client (connection reuse) for its lifetime."""

    def __init__(self, name: str, cfg: WebhookChannel) -> None:
        self.name = name
        self.cfg = cfg
        verify: ssl.SSLContext | bool = cfg.verify_tls
        if cfg.verify_tls and cfg.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(cfg.ca_file))
        self._client = httpx.Client(timeout=cfg.timeout_s, verify=verify, follow_redirects=False)
        self._secrets = [cfg.url.get_secret_value(),
                         cfg.secret.get_secret_value() if cfg.secret else None,
                         *(h.get_secret_value() for h in cfg.headers.values())]
        LIBRARY_REDACTOR.add(*self._secrets)
        query = urllib.parse.urlsplit(self._secrets[0] or "").query
        LIBRARY_REDACTOR.add(*(v for _, v in urllib.parse.parse_qsl(query)))

    def close(self) -> None:
        self._client.close()

    def _url(self) -> str:
        url = self.cfg.url.get_secret_value()
        if self.cfg.type == "dingtalk" and self.cfg.secret is not None:
            ts = int(time.time() * 1000)
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}timestamp={ts}&sign={dingtalk_sign(self.cfg.secret.get_secret_value(), ts)}"
        return url

    def send(self, message: Message) -> None:
        body = json.dumps(payload(self.cfg.type, message), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8",
                   **{k: v.get_secret_value() for k, v in self.cfg.headers.items()}}
        try:
            resp = self._client.post(self._url(), content=body, headers=headers)
        except httpx.HTTPError as exc:
            # connection refused, timeouts, TLS failures: the receiver may be back later
            raise DeliveryError(f"webhook channel {self.name}: {type(exc).__name__}: "
                                f"{redact(str(exc), self._secrets)}", retryable=True) from None
        if resp.status_code >= 300:
            retryable = resp.status_code >= 500 or resp.status_code in (408, 429)
            raise DeliveryError(f"webhook channel {self.name}: HTTP {resp.status_code}", retryable=retryable)
        if self.cfg.type in ("dingtalk", "wecom"):
            try:
                answer = resp.json()
            except ValueError:
                raise DeliveryError(f"webhook channel {self.name}: answer is not JSON",
                                    retryable=True) from None
            code = answer.get("errcode") if isinstance(answer, dict) else None
            if code != 0:
                msg = str(answer.get("errmsg", ""))[:200] if isinstance(answer, dict) else ""
                raise DeliveryError(f"webhook channel {self.name}: errcode {code}: "
                                    f"{redact(msg, self._secrets)}", retryable=code in _THROTTLED)
        log.info("webhook channel %s: sent %r", self.name, message.title)
