"""Shared fixtures: the shipped calendar and contract rules, and a sample feeder."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from weibao.collector.contract.calendar import WorkingCalendar
from weibao.collector.contract.calendar_files import load_calendar
from weibao.collector.contract.rules import ContractRules, load_contract_rules

CST = ZoneInfo("Asia/Shanghai")
RULES = Path(__file__).resolve().parents[3] / "rules" / "contract.yaml"


def at(text: str) -> datetime:
    """'2026-11-24 09:00' (or with seconds) as an Asia/Shanghai time."""
    return datetime.fromisoformat(text).replace(tzinfo=CST)


def every_minute(start: datetime, end: datetime, step: timedelta = timedelta(minutes=1)) -> Iterator[datetime]:
    """start, start+step, ... strictly before end."""
    t = start
    while t < end:
        yield t
        t += step


@pytest.fixture(scope="session")
def calendar() -> WorkingCalendar:
    return load_calendar()


@pytest.fixture(scope="session")
def rules() -> ContractRules:
    return load_contract_rules(RULES)
