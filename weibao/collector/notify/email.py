"""Send a notification by email with the standard library's smtplib (STARTTLS or implicit TLS, AUTH).

Blocking by design: the dispatcher calls it from its own thread, never from the evaluation path.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from weibao.collector.notify.config import EmailChannel
from weibao.collector.notify.errors import DeliveryError, redact
from weibao.collector.notify.model import Message

log = logging.getLogger(__name__)


def tls_context(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def build_email(cfg: EmailChannel, message: Message) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = message.title
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    if message.extra_recipients:
        msg["Cc"] = ", ".join(message.extra_recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="weibao")
    msg.set_content(message.text(), charset="utf-8")
    return msg


class EmailTransport:
    """One email channel: SMTP host, TLS, credentials and recipients from its configuration."""

    def __init__(self, name: str, cfg: EmailChannel) -> None:
        self.name = name
        self.cfg = cfg

    def send(self, message: Message) -> None:
        recipients = [*self.cfg.to, *(r for r in message.extra_recipients if r not in self.cfg.to)]
        deliver(self.name, self.cfg, build_email(self.cfg, message), recipients)


def deliver(name: str, cfg: EmailChannel, email: EmailMessage, recipients: list[str]) -> None:
    """Send ``email`` through the channel's SMTP server; DeliveryError says whether a retry can help."""
    password = cfg.password.get_secret_value() if cfg.password is not None else None
    ctx = tls_context(str(cfg.ca_file) if cfg.ca_file else None, cfg.verify_tls)
    try:
        smtp: smtplib.SMTP
        if cfg.ssl:
            smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_s, context=ctx)
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        with smtp:
            smtp.ehlo()
            if cfg.starttls:
                smtp.starttls(context=ctx)
                smtp.ehlo()
            if cfg.username is not None and password is not None:
                smtp.login(cfg.username, password)
            refused = smtp.send_message(email, from_addr=cfg.sender, to_addrs=recipients)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"email channel {name}: {cfg.host}:{cfg.port} refused the login "
                            f"(code {exc.smtp_code})", retryable=False) from None
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
        raise DeliveryError(f"email channel {name}: addresses refused: "
                            f"{redact(str(exc), [password])}", retryable=False) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"email channel {name}: {cfg.host}:{cfg.port} does not support "
                            f"{redact(str(exc), [password])}", retryable=False) from None
    except (smtplib.SMTPException, OSError) as exc:
        # connection refused, timeouts, TLS failures, 4xx answers: the server may be back later
        raise DeliveryError(f"email channel {name}: {cfg.host}:{cfg.port}: {type(exc).__name__}: "
                            f"{redact(str(exc), [password])}", retryable=True) from None
    if refused:
        log.warning("email channel %s: %d recipients refused", name, len(refused))
    log.info("email channel %s: sent %r to %d recipients", name, str(email["Subject"]), len(recipients))
