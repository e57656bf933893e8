"""Scenario 15: notifications of ticket changes reach a real SMTP server and a real webhook receiver.

One root cause (a backbone node with three dependents) lived up to this minute: opened (level 3), promoted
(level 2 once it is down 1 h: "backbone core node fully unreachable >= 1 h"), restored. Each change is one
mail and one webhook post; the root-cause message names the affected devices; nothing else is sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.collector.scenarios.conftest import SCENARIO_CONFIG, issue_token
from tests.collector.scenarios.replay import (
    CST,
    device_entry,
    reachability,
    register,
    replay,
    settled,
    tickets_of,
    wait_for,
)
from tests.peers.collector import CollectorPeer, run_collector
from tests.peers.smtp import SmtpPeer
from tests.peers.webhook import WebhookPeer
from weibao.collector.auth import Role

pytestmark = pytest.mark.timeout(180)

CHANGES = ["opened", "promoted", "restored"]
DEPS = ["s15-acc-1", "s15-acc-2", "s15-acc-3"]


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpPeer]:
    with SmtpPeer() as peer:
        yield peer


@pytest.fixture(scope="module")
def hook() -> Iterator[WebhookPeer]:
    with WebhookPeer() as peer:
        yield peer


@pytest.fixture(scope="module")
def notifying(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpPeer,
              hook: WebhookPeer) -> Iterator[CollectorPeer]:
    work: Path = tmp_path_factory.mktemp("notify-collector")
    routing = {"changes": CHANGES}  # clock warnings (due_soon, breached) are left out of this scenario
    notify = {"channels": {
        "duty-mail": {"type": "email", "host": "127.0.0.1", "port": smtp.port, "starttls": False,
                      "sender": "weibao@example.net", "to": ["noc@example.net"], "routing": routing},
        "duty-hook": {"type": "webhook", "url": f"{hook.url}/hook", "routing": routing}},
        "dispatch": {"poll_interval_s": 0.2}}
    path = work / "notify.yaml"
    path.write_text(json.dumps(notify))
    cfg = {**SCENARIO_CONFIG, "contract": {**SCENARIO_CONFIG["contract"], "notify": str(path)}}
    with run_collector(work, cfg) as peer:
        yield peer


def test_15_one_message_per_change_naming_affected_devices(notifying: CollectorPeer, smtp: SmtpPeer,
                                                           hook: WebhookPeer) -> None:
    now = datetime.now(CST).replace(second=0, microsecond=0)
    start, end = now - timedelta(minutes=100), now - timedelta(minutes=20)
    with notifying.client(issue_token(notifying, "sc15", Role.AGENT)) as http, \
            notifying.client(issue_token(notifying, "eng-li", Role.ENGINEER)) as eng:
        register(http, "sc15", [device_entry("s15-core", "backbone", kind="router"),
                                *[device_entry(d, "business", depends_on="s15-core") for d in DEPS]])
        points = reachability("s15-core", start - timedelta(minutes=10), now + timedelta(seconds=1),
                              [(start, end)])
        for d in DEPS:
            points += reachability(d, start - timedelta(minutes=10), now + timedelta(seconds=1), [(start, end)])
        replay(http, "sc15", points)
        found = settled(eng, "s15-core", 1)
        assert len(found) == 1, found
        # 80 min unreachable: level 2 (>= 1 h), < 2 h; the dependents are attached, not ticketed
        assert found[0]["level"] == 2
        assert sorted(found[0]["affected"]) == DEPS
        tid = found[0]["id"]
        own = {d: tickets_of(eng, d) for d in DEPS}

    def notified() -> list[tuple[str, str, str, int]]:
        """Every notification the webhook received, digests unpacked: (ticket, device, change, level)."""
        return [(n["ticket_id"], n["device"], n["change"], n["level"]) for p in hook.received()
                for n in p.json().get("notifications", [p.json()])]

    # the channels' rate limit (3 at once, then 6 a minute) may hold some back for a few seconds
    wait_for(lambda: {c for t, _, c, _ in notified() if t == tid} >= set(CHANGES), timeout=60)
    time.sleep(3)  # anything more would be a storm: give it the time to show
    mails, posts, sent = smtp.messages(), hook.received(), notified()
    subjects = [str(m.message["Subject"]) for m in mails]
    # what was notified, whatever the packaging: the root-cause ticket's three changes, nothing else
    # (level of each: opened at 3, promoted to 2, restored at 2)
    assert sent == [(tid, "s15-core", "opened", 3), (tid, "s15-core", "promoted", 2),
                    (tid, "s15-core", "restored", 2)], sent
    # one message per change: three mails, three posts, no digest
    assert len(mails) == 3, subjects
    assert len(posts) == 3, sent
    # one mail per change, in the order they happened: opened, promoted, restored; each names the ticket
    for marker, subject in zip(("新故障工单", "故障升级", "故障已恢复"), subjects, strict=True):
        assert marker in subject and tid in subject, subjects
    kinds = [n["change"] for p in posts for n in p.json().get("notifications", [p.json()])]
    assert kinds == CHANGES, kinds
    # the root-cause ticket's messages list the affected devices (by the promotion they are attached)
    promoted_mail = mails[1].message.get_body(("plain",))
    assert promoted_mail is not None
    body = promoted_mail.get_content()
    assert all(d in body for d in DEPS), body
    assert all(d in posts[1].body.decode() for d in DEPS), posts[1].body.decode()
    # and the dependents opened no tickets of their own
    assert own == {d: [] for d in DEPS}
