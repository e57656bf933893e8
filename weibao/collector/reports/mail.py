"""Mail generated reports as attachments through an e-mail channel of the notify configuration."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from weibao.collector.notify.config import EmailChannel
from weibao.collector.notify.email import deliver
from weibao.collector.reports.store import GeneratedReport
from weibao.core.inspection.i18n import Lang, t


def subject(report: GeneratedReport, site: str, lang: Lang) -> str:
    title = t(f"report.{report.kind}", lang)
    return f"{site} {title} {report.period}".strip()


def build_message(channel: EmailChannel, report: GeneratedReport, recipients: Sequence[str], *, site: str,
                  lang: Lang) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject(report, site, lang)
    msg["From"] = channel.sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="weibao")
    msg.set_content(t("mail_body", lang, title=subject(report, site, lang),
                      files=", ".join(f.path.name for f in report.files)), charset="utf-8")
    for f in report.files:
        ctype = mimetypes.guess_type(f.path.name)[0] or "application/octet-stream"
        main, sub = ctype.split("/", 1)
        msg.add_attachment(f.path.read_bytes(), maintype=main, subtype=sub, filename=f.path.name)
    return msg


def send_report(name: str, channel: EmailChannel, report: GeneratedReport, recipients: Sequence[str], *,
                site: str, lang: Lang) -> None:
    """Send ``report``'s files; raises DeliveryError (retryable or not) when the server refuses."""
    to = list(recipients) or list(channel.to)
    deliver(name, channel, build_message(channel, report, to, site=site, lang=lang), to)
