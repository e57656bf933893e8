"""The agent's inspection round: the core's evaluation with the inventory's credentials masked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from weibao.agent.inspection.history import History
from weibao.agent.inspection.redact import secrets_of
from weibao.agent.inventory.model import Device
from weibao.core.inspection import evaluate
from weibao.core.inspection.evaluate import LOCAL_TZ
from weibao.core.inspection.model import Inspection
from weibao.core.inspection.rules import InspectionRules
from weibao.core.model import PollResult

__all__ = ["LOCAL_TZ", "inspect"]


def inspect(devices: Sequence[Device], results: Sequence[PollResult], rules: InspectionRules,
            history: History, *, now: datetime) -> Inspection:
    """Evaluate every check for every device of ``devices`` against this round's ``results``."""
    return evaluate.inspect(devices, results, rules, history, now=now, secrets=secrets_of(devices))
