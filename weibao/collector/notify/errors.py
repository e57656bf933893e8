"""Delivery errors of the notification channels, and redaction of secrets out of their messages."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from weibao.collector.errors import CollectorError


class DeliveryError(CollectorError):
    """A channel could not deliver a message; ``retryable`` says whether trying again later can help.

    The message names the channel and what went wrong, never a password, token or signed URL.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each (non-empty) secret in ``text``."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


class RedactingFilter(logging.Filter):
    """Removes registered secrets from records of a library logger before any handler sees them.

    httpx logs every request URL at INFO, and DingTalk and WeCom robots carry their access token in the URL.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *secrets: str | None) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = list(self._secrets)
        if not secrets:
            return True
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            return True
        if any(s in text for s in secrets):
            record.msg = redact(text, secrets)
            record.args = None
        return True


LIBRARY_REDACTOR = RedactingFilter()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(LIBRARY_REDACTOR)
