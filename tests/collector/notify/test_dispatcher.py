"""The dispatcher against real receivers: one message per change, no storm, bounded retries, never blocking,
durable outbox, routing and protection-period recipients, no password in any log line."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from tests.collector.notify.helpers import T0, opened, root_cause_ticket
from tests.peers.smtp import SmtpPeer, spare_port
from tests.peers.webhook import WebhookPeer
from weibao.collector.contract import load_calendar
from weibao.collector.notify.config import NotifyConfig
from weibao.collector.notify.dispatcher import Dispatcher
from weibao.collector.notify.model import ChangeKind, for_clock, for_event
from weibao.collector.notify.outbox import SqlOutbox
from weibao.collector.tickets import machine as m
from weibao.core.model import utcnow

PASSWORD = "Disp-Pa55-word-9"


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def config(channels: dict[str, Any], **dispatch: Any) -> NotifyConfig:
    return NotifyConfig.model_validate({"channels": channels,
                                        "dispatch": {"poll_interval_s": 0.05, **dispatch}})


def hook(url: str, **kw: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "timeout_s": 2, **kw}


def mail(peer: SmtpPeer, **kw: Any) -> dict[str, Any]:
    return {"type": "email", "host": "127.0.0.1", "port": peer.port, "starttls": True, "username": "weibao",
            "password": PASSWORD, "sender": "weibao@example.net", "to": ["noc@example.net"],
            "ca_file": str(peer.ca_file), "timeout_s": 5, **kw}


@pytest.fixture
def web() -> Iterator[WebhookPeer]:
    with WebhookPeer() as p:
        yield p


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpPeer]:
    with SmtpPeer(tls_dir=tmp_path, auth={"weibao": PASSWORD}) as p:
        yield p


@pytest.fixture
def run() -> Iterator[Callable[[Dispatcher], Dispatcher]]:
    started: list[Dispatcher] = []

    def start(d: Dispatcher) -> Dispatcher:
        d.start()
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def test_one_message_per_change(web: WebhookPeer, smtp: SmtpPeer, run: Any,
                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    d = run(Dispatcher(config({"hook": hook(web.url), "mail": mail(smtp)})))
    t = root_cause_ticket()
    changes = [n for e in t.events if (n := for_event(t, e)) is not None]
    assert [n.change for n in changes] == [ChangeKind.OPENED, ChangeKind.PROMOTED]  # attach sends nothing
    for n in changes:
        assert d.submit(n) == 2
        assert d.submit(n) == 0  # the same change reported twice (a replay) is one message
    wait_for(lambda: d.stats().messages_sent == 4)
    time.sleep(0.2)  # nothing more comes
    posts = web.received()
    assert [p.json()["notifications"][0]["change"] for p in posts] == ["opened", "promoted"]
    assert [str(r.message["Subject"]).split()[2] for r in smtp.messages()] == ["新故障工单", "故障升级"]
    body = smtp.messages()[1].message.get_body().get_content()  # type: ignore[union-attr]
    assert "20261125-0001" in body and "core-sw-1" in body and "acc-sw-1, acc-sw-2" in body
    s = d.stats()
    assert (s.queued, s.deduplicated, s.given_up, s.pending) == (4, 4, 0, 0)  # counted per channel
    # a restoration after a re-open is a new change, not a duplicate of the first restoration
    t = m.restore(t, at=T0 + timedelta(hours=2)).ticket
    t = m.reopen(t, at=T0 + timedelta(hours=2, minutes=5)).ticket
    t = m.restore(t, at=T0 + timedelta(hours=3)).ticket
    restores = [n for e in t.events if (n := for_event(t, e)) is not None and n.change is ChangeKind.RESTORED]
    assert len({n.key for n in restores}) == 2
    assert PASSWORD not in caplog.text


def test_burst_of_twenty_is_coalesced(web: WebhookPeer, run: Any) -> None:
    cfg = config({"hook": hook(web.url, rate={"per_minute": 60, "burst": 3})}, coalesce_after=3)
    d = Dispatcher(cfg)
    ids = [f"20261125-{i:04d}" for i in range(1, 21)]
    for tid in ids:  # the burst lands before the worker's next pass
        d.submit(opened(tid))
    run(d)
    wait_for(lambda: d.stats().pending == 0)
    time.sleep(0.2)
    posts = web.received()
    assert len(posts) == 1
    body = posts[0].json()
    assert body["count"] == 20 and [n["ticket_id"] for n in body["notifications"]] == ids
    assert all(tid in body["text"] for tid in ids)
    assert d.stats().coalesced == 20


def test_burst_while_running_is_rate_limited(web: WebhookPeer, run: Any) -> None:
    cfg = config({"hook": hook(web.url, rate={"per_minute": 60, "burst": 3})}, coalesce_after=3)
    d = run(Dispatcher(cfg))
    ids = [f"20261126-{i:04d}" for i in range(1, 21)]
    for tid in ids:
        d.submit(opened(tid))
        time.sleep(0.005)
    wait_for(lambda: d.stats().pending == 0)
    delivered = [n["ticket_id"] for p in web.received() for n in p.json()["notifications"]]
    assert sorted(delivered) == ids  # every change told exactly once ...
    assert len(web.received()) <= 5  # ... in at most burst + what one token a second allows meanwhile


def test_failing_channel_bounded_retries_and_visible(web: WebhookPeer, run: Any,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    dead = f"http://127.0.0.1:{spare_port()}/hook"  # nothing listens there
    cfg = config({"dead": hook(dead), "ok": hook(web.url)}, max_attempts=3, backoff_initial_s=0.05,
                 backoff_max_s=0.2)
    d = run(Dispatcher(cfg))
    d.submit(opened("20261125-0042"))
    wait_for(lambda: d.stats().given_up == 1)
    s = d.stats()
    assert s.attempts_failed == 3 and s.pending == 0 and s.messages_sent == 1
    assert [(f.channel, f.attempts, f.final) for f in s.last_failures] == [
        ("dead", 1, False), ("dead", 2, False), ("dead", 3, True)]
    assert all(f.tickets == ("20261125-0042",) and "ConnectError" in f.error for f in s.last_failures)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "giving up" in errors[0].getMessage() and "20261125-0042" in errors[0].getMessage()
    assert len(web.received()) == 1  # the healthy channel was not held up
    time.sleep(0.5)
    assert d.stats().attempts_failed == 3  # bounded: no further attempts


def test_submit_never_waits_for_a_hanging_receiver(run: Any) -> None:
    with socket.socket() as hole:  # accepts connections into its backlog, never answers
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        url = f"http://127.0.0.1:{hole.getsockname()[1]}/hook"
        d = run(Dispatcher(config({"slow": hook(url, timeout_s=1)}, max_attempts=1)))
        d.submit(opened("20261125-0100"))
        time.sleep(0.3)  # the worker is now stuck in the request
        worst = 0.0
        for i in range(50):
            t = time.perf_counter()
            d.submit(opened(f"20261125-{200 + i:04d}"))
            worst = max(worst, time.perf_counter() - t)
        assert worst < 0.05
        wait_for(lambda: d.stats().given_up >= 1, timeout=10)


def test_outbox_survives_a_restart(web: WebhookPeer, tmp_path: Path, run: Any) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    outbox = SqlOutbox(engine)
    outbox.create_schema()
    cfg = config({"hook": hook(web.url)})
    first = Dispatcher(cfg, outbox=outbox)  # never started: the process "dies" with two changes queued
    assert first.submit(opened("20261125-0007")) == 1
    assert first.submit(opened("20261125-0008")) == 1
    second = run(Dispatcher(cfg, outbox=SqlOutbox(engine)))
    wait_for(lambda: second.stats().pending == 0)
    assert sorted(n["ticket_id"] for p in web.received() for n in p.json()["notifications"]) == [
        "20261125-0007", "20261125-0008"]
    assert second.submit(opened("20261125-0007")) == 0  # already sent before the restart
    dead = Dispatcher(config({"hook": hook(f"http://127.0.0.1:{spare_port()}/")}, max_attempts=1),
                      outbox=SqlOutbox(engine))
    second.stop()
    dead.submit(opened("20261125-0009"))
    dead.process_once()  # one pass in this thread: the delivery fails and is given up at once
    (failed,) = SqlOutbox(engine).failed()
    assert failed.notification.ticket_id == "20261125-0009" and "ConnectError" in failed.last_error
    assert SqlOutbox(engine).purge(utcnow() + timedelta(seconds=1)) == 3
    assert SqlOutbox(engine).failed() == []
    engine.dispose()


def test_routing_and_protection_recipients(web: WebhookPeer, smtp: SmtpPeer, run: Any, tmp_path: Path) -> None:
    cfg = NotifyConfig.model_validate({
        "channels": {"mail": {**mail(smtp), "routing": {"levels": [1, 2]}}, "hook": hook(web.url)},
        "dispatch": {"poll_interval_s": 0.05}})
    site = tmp_path / "calendar.yaml"  # protection periods are the calendar's, recipients with them
    site.write_text(f"protection_periods:\n  - name: 春节重保\n    start: {(T0 - timedelta(days=1)).isoformat()}\n"
                    f"    end: {(T0 + timedelta(days=1)).isoformat()}\n"
                    "    notify: {mail: [director@example.net]}\n", encoding="utf-8")
    d = run(Dispatcher(cfg, extra_recipients=load_calendar(site).extra_recipients))
    assert d.submit(opened("20261125-0301", level=3)) == 1  # general faults: webhook only
    t = root_cause_ticket("20261125-0302")
    deadline = T0 + timedelta(minutes=10)
    assert d.submit(for_clock(t, change=ChangeKind.BREACHED, clock="response", deadline=deadline,
                              at=T0 + timedelta(hours=1))) == 2
    wait_for(lambda: d.stats().messages_sent == 3)
    (got,) = smtp.messages()
    assert set(got.rcpt_tos) == {"noc@example.net", "director@example.net"}
    body = got.message.get_body().get_content()  # type: ignore[union-attr]
    assert "已超时限" in body and "响应" in body and "2026-11-25 10:10" in body


def test_wrong_password_gives_up_at_once_without_showing_it(tmp_path: Path, run: Any,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with SmtpPeer(tls_dir=tmp_path, auth={"weibao": "the-real-one"}) as peer:
        cfg = config({"mail": mail(peer)}, max_attempts=5)
        assert PASSWORD not in repr(cfg) and PASSWORD not in str(cfg.model_dump())
        d = run(Dispatcher(cfg))
        d.submit(opened("20261125-0400"))
        wait_for(lambda: d.stats().given_up == 1)
        s = d.stats()
        assert s.attempts_failed == 1 and "refused the login" in s.last_failures[0].error
    assert PASSWORD not in caplog.text
    assert all(PASSWORD not in f.error for f in s.last_failures)
