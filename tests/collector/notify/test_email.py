"""Email delivery to a real aiosmtpd on loopback: STARTTLS with a private CA, AUTH, content, failures."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.collector.notify.helpers import root_cause_ticket
from tests.peers.smtp import SmtpPeer, spare_port
from weibao.collector.notify.config import EmailChannel
from weibao.collector.notify.email import EmailTransport
from weibao.collector.notify.errors import DeliveryError
from weibao.collector.notify.model import Message, for_event

PASSWORD = "S3cret-smtp-Pa55"


def channel(peer: SmtpPeer, password: str = PASSWORD, **kw: object) -> EmailChannel:
    return EmailChannel.model_validate({
        "type": "email", "host": "127.0.0.1", "port": peer.port, "starttls": True, "username": "weibao",
        "password": password, "sender": "weibao@example.net", "to": ["noc@example.net", "duty@example.net"],
        "ca_file": str(peer.ca_file), "timeout_s": 5, **kw})


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[SmtpPeer]:
    with SmtpPeer(tls_dir=tmp_path, auth={"weibao": PASSWORD}) as p:
        yield p


def test_starttls_auth_delivery(peer: SmtpPeer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ticket = root_cause_ticket()
    n = for_event(ticket, ticket.events[-1])
    assert n is not None
    EmailTransport("mail", channel(peer)).send(Message(items=(n,), extra_recipients=("boss@example.net",)))
    got = peer.messages()
    assert len(got) == 1
    r = got[0]
    assert r.login == "weibao"  # authenticated, which aiosmtpd allows only after STARTTLS here
    assert set(r.rcpt_tos) == {"noc@example.net", "duty@example.net", "boss@example.net"}
    assert r.message["Cc"] == "boss@example.net"
    subject = str(r.message["Subject"])
    body = r.message.get_body().get_content()  # type: ignore[union-attr]
    assert "20261125-0001" in subject and "core-sw-1" in subject and "二级" in subject
    assert "故障升级" in body and "core-sw-1" in body and "二级（严重）" in body
    assert "受影响设备（2）：acc-sw-1, acc-sw-2" in body
    assert PASSWORD not in caplog.text


def test_wrong_password_is_not_retried_and_not_shown(peer: SmtpPeer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ticket = root_cause_ticket()
    n = for_event(ticket, ticket.events[0])
    assert n is not None
    wrong = "Wr0ng-" + PASSWORD
    with pytest.raises(DeliveryError) as err:
        EmailTransport("mail", channel(peer, password=wrong)).send(Message(items=(n,)))
    assert err.value.retryable is False and "refused the login" in str(err.value)
    assert wrong not in str(err.value) and wrong not in caplog.text
    assert peer.messages() == [] and peer.auth_attempts
    assert all(a == ("weibao", False) for a in peer.auth_attempts)


def test_untrusted_certificate_is_refused(peer: SmtpPeer) -> None:
    ticket = root_cause_ticket()
    n = for_event(ticket, ticket.events[0])
    assert n is not None
    cfg = channel(peer).model_copy(update={"ca_file": None})
    with pytest.raises(DeliveryError, match="SSLCertVerificationError"):
        EmailTransport("mail", cfg).send(Message(items=(n,)))
    assert peer.messages() == []


def test_closed_port_is_retryable() -> None:
    cfg = EmailChannel.model_validate({"type": "email", "host": "127.0.0.1", "port": spare_port(),
                                       "starttls": False, "sender": "a@example.net", "to": ["b@example.net"],
                                       "timeout_s": 2})
    ticket = root_cause_ticket()
    n = for_event(ticket, ticket.events[0])
    assert n is not None
    with pytest.raises(DeliveryError) as err:
        EmailTransport("mail", cfg).send(Message(items=(n,)))
    assert err.value.retryable and "ConnectionRefusedError" in str(err.value)


def test_plain_smtp_without_auth() -> None:
    with SmtpPeer() as peer:
        cfg = EmailChannel.model_validate({"type": "email", "host": "127.0.0.1", "port": peer.port,
                                           "starttls": False, "sender": "a@example.net",
                                           "to": ["b@example.net"]})
        ticket = root_cause_ticket()
        n = for_event(ticket, ticket.events[0])
        assert n is not None
        EmailTransport("mail", cfg).send(Message(items=(n,)))
        assert [m.rcpt_tos for m in peer.messages()] == [("b@example.net",)]


def test_password_needs_tls() -> None:
    with pytest.raises(ValueError, match="only sent over TLS"):
        EmailChannel.model_validate({"type": "email", "host": "h", "starttls": False, "username": "u",
                                     "password": "p", "sender": "a@example.net", "to": ["b@example.net"]})
