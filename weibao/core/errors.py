"""The root of weibao's exceptions, and the configuration error every side raises.

    WeibaoError                 root of everything weibao raises on purpose
    ├── ConfigError             a file (inventory, rules, secrets, config) is invalid; carries every problem
    ├── weibao.agent.errors.AgentError          the agent's own (device operations)
    └── weibao.collector.errors.CollectorError  the collector's own (refusals, storage, tickets, delivery)

``retryable`` says whether the same call may succeed later.
"""

from __future__ import annotations

from dataclasses import dataclass


class WeibaoError(Exception):
    """Root of weibao's own exceptions."""

    retryable: bool = False


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
