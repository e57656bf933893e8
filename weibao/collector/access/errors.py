"""Refusals of the access package, with a message fit to show the person concerned."""

from __future__ import annotations

from weibao.collector.errors import CollectorError


class AccessError(CollectorError):
    """An account operation cannot be done (unknown user, name taken, weak password)."""

    retryable = False
