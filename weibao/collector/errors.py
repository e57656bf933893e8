"""The collector's exception tree (under ``weibao.core.errors.WeibaoError``).

    CollectorError                      root of what the collector raises on purpose
    ├── Refused                         a request it will not apply: HTTP status, reason, problems by field
    ├── StorageError                    a raw-sample backend refused or failed a write (storage/)
    │   └── StorageUnavailable          ... is away or failing: the agent should retry the batch later
    ├── TokenError                      a token operation cannot be done (auth)
    ├── TicketError                     a ticket cannot change (tickets/: IllegalTransition, ConcurrentUpdate)
    ├── Fenced                          a write of a replica that no longer leads, undone (ha/)
    ├── DeliveryError                   a notification channel could not deliver (notify/)
    └── BackupError                     a backup cannot be made, or an archive cannot be restored (backup/)

The HTTP layer turns ``Refused`` into its answer (collector/http/deps.py); everything else that reaches it
unhandled is a bug and answers 500.
"""

from __future__ import annotations

from typing import Any

from weibao.core.errors import WeibaoError


class CollectorError(WeibaoError):
    """Root of the collector's own exceptions."""


class Refused(CollectorError):
    """A request the collector will not apply; ``status`` is the HTTP answer, ``reason`` a metrics label."""

    def __init__(self, status: int, reason: str, message: str,
                 problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.problems = problems or []
        self.retryable = status >= 500

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "reason": self.reason}
        if self.problems:
            out["problems"] = self.problems
        return out


class StorageError(CollectorError):
    """A raw-sample backend refused or failed a write."""


class StorageUnavailable(StorageError):
    """The backend is unreachable or answered a server error: retrying later can help."""

    retryable = True


class TokenError(CollectorError):
    """A token operation cannot be done (name already holds a token, nothing to revoke)."""


class Fenced(CollectorError):
    """A transaction undone before its commit because the process that made it no longer has the right to
    (a collector replica whose term as leader ended while its contract engine was still writing)."""


class BackupError(CollectorError):
    """A backup cannot be made, or an archive is refused for restore (damaged, or the target is not empty)."""
