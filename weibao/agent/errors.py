"""The agent's exception tree (under ``weibao.core.errors.WeibaoError``).

    AgentError                  root of what the agent raises on purpose
    └── PollFailure             one device operation failed; ``retryable`` says whether trying again can help
        ├── DeviceTimeout       the device did not answer in time (retryable)
        ├── AuthFailure         credentials refused, host key mismatch (not retryable)
        └── ProtocolFailure     the device answered something we cannot use

A poller never lets a PollFailure escape: it turns it into an error in its PollResult.
"""

from __future__ import annotations

from weibao.core.errors import WeibaoError


class AgentError(WeibaoError):
    """Root of the agent's own exceptions."""


class PollFailure(AgentError):
    """A device operation failed."""


class DeviceTimeout(PollFailure):
    """The device did not answer within the operation's timeout."""

    retryable = True


class AuthFailure(PollFailure):
    """Credentials or host key refused."""


class ProtocolFailure(PollFailure):
    """The device answered, but not with anything usable."""
