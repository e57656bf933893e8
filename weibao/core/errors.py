"""The agent's exception tree.

    WeibaoError                 root of everything the agent raises on purpose
    ├── ConfigError             a file (inventory, rules, secrets) is invalid; carries every problem
    └── PollFailure             one device operation failed; ``retryable`` says whether trying again can help
        ├── DeviceTimeout       the device did not answer in time (retryable)
        ├── AuthFailure         credentials refused, host key mismatch (not retryable)
        └── ProtocolFailure     the device answered something we cannot use

A poller never lets a PollFailure escape: it turns it into an error in its PollResult.
"""

from __future__ import annotations

from dataclasses import dataclass


class WeibaoError(Exception):
    """Root of the agent's own exceptions."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a configuration file, located by file, line and key."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class ConfigError(WeibaoError):
    """A configuration file is invalid; ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PollFailure(WeibaoError):
    """A device operation failed."""

    retryable: bool = False


class DeviceTimeout(PollFailure):
    """The device did not answer within the operation's timeout."""

    retryable = True


class AuthFailure(PollFailure):
    """Credentials or host key refused."""


class ProtocolFailure(PollFailure):
    """The device answered, but not with anything usable."""
