"""Webhook delivery to a real HTTP server on loopback: generic JSON, DingTalk (signed), WeCom."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Iterator

import pytest

from tests.collector.notify.helpers import opened, root_cause_ticket
from tests.peers.webhook import WebhookPeer
from weibao.collector.notify.config import WebhookChannel
from weibao.collector.notify.errors import DeliveryError
from weibao.collector.notify.model import Message, for_event
from weibao.collector.notify.webhook import WECOM_MAX_BYTES, WebhookTransport, dingtalk_sign

TOKEN = "tok-4f1c2a9e77"
SIGN_SECRET = "SECa1b2c3d4e5f60718293a4b5c6d7e8f9"


@pytest.fixture
def peer() -> Iterator[WebhookPeer]:
    with WebhookPeer() as p:
        yield p


def transport(kind: str, url: str, **kw: object) -> WebhookTransport:
    return WebhookTransport(kind, WebhookChannel.model_validate({"type": kind, "url": url, "timeout_s": 5, **kw}))


def root_message(extra: tuple[str, ...] = ()) -> Message:
    t = root_cause_ticket()
    n = for_event(t, t.events[-1])
    assert n is not None
    return Message(items=(n,), extra_recipients=extra)


def test_generic_json(peer: WebhookPeer) -> None:
    tr = transport("webhook", f"{peer.url}/hooks/weibao", headers={"Authorization": "Bearer hook-secret"})
    tr.send(root_message())
    (post,) = peer.received()
    assert post.path == "/hooks/weibao" and post.headers["Authorization"] == "Bearer hook-secret"
    body = post.json()
    (n,) = body["notifications"]
    assert (n["ticket_id"], n["change"], n["level"], n["device"]) == ("20261125-0001", "promoted", 2, "core-sw-1")
    assert n["affected"] == ["acc-sw-1", "acc-sw-2"] and body["count"] == 1
    assert "受影响设备（2）：acc-sw-1, acc-sw-2" in body["text"]


def test_dingtalk_signed_markdown(peer: WebhookPeer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    before = int(time.time() * 1000)
    tr = transport("dingtalk", f"{peer.url}/robot/send?access_token={TOKEN}", secret=SIGN_SECRET)
    tr.send(root_message(extra=("13800000000",)))
    after = int(time.time() * 1000)
    (post,) = peer.received()
    assert post.path == "/robot/send" and post.query["access_token"] == TOKEN
    ts = int(post.query["timestamp"])
    assert before <= ts <= after
    # the receiver's own check, as DingTalk documents it: HMAC-SHA256 over "timestamp\nsecret", base64
    expected = base64.b64encode(hmac.new(SIGN_SECRET.encode(), f"{ts}\n{SIGN_SECRET}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert post.query["sign"] == expected
    body = post.json()
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"title", "text"}
    assert "20261125-0001" in body["markdown"]["title"]
    text = body["markdown"]["text"]
    assert "core-sw-1" in text and "二级（严重）" in text and "acc-sw-1, acc-sw-2" in text
    assert body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False} and "@13800000000" in text
    assert TOKEN not in caplog.text and SIGN_SECRET not in caplog.text


def test_dingtalk_sign_known_value() -> None:
    # a published example of the scheme: timestamp 1700000000000, secret "secret"
    assert dingtalk_sign("secret", 1700000000000) == "OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D"


def test_wecom_markdown(peer: WebhookPeer) -> None:
    tr = transport("wecom", f"{peer.url}/cgi-bin/webhook/send?key={TOKEN}")
    tr.send(root_message(extra=("zhangsan",)))
    (post,) = peer.received()
    assert post.query == {"key": TOKEN}
    body = post.json()
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"content"}
    content = body["markdown"]["content"]
    assert "<@zhangsan>" in content and "20261125-0001" in content and "acc-sw-1, acc-sw-2" in content
    # a digest far over WeCom's limit is cut, not refused
    big = Message(items=tuple(opened(f"T-{i:03d}") for i in range(150)))
    tr.send(big)
    assert len(peer.received()[-1].json()["markdown"]["content"].encode()) <= WECOM_MAX_BYTES


def test_robot_errcodes(peer: WebhookPeer, caplog: pytest.LogCaptureFixture) -> None:
    tr = transport("dingtalk", f"{peer.url}/robot/send?access_token={TOKEN}")
    peer.script.extend([(200, {"errcode": 130101, "errmsg": "send too fast"}),
                        (200, {"errcode": 310000, "errmsg": "sign not match"}),
                        (503, {"oops": 1}), (404, {})])
    results = []
    for _ in range(4):
        with pytest.raises(DeliveryError) as err:
            tr.send(root_message())
        results.append(err.value.retryable)
        assert TOKEN not in str(err.value)
    assert results == [True, False, True, False]
    assert TOKEN not in caplog.text


def test_connection_refused_is_retryable() -> None:
    with WebhookPeer() as p:
        url = f"{p.url}/x?access_token={TOKEN}"
    tr = transport("wecom", url)  # the server is gone: nothing listens on the port any more
    with pytest.raises(DeliveryError) as err:
        tr.send(root_message())
    assert err.value.retryable and TOKEN not in str(err.value)
