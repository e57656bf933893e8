"""The contract's fault table and clock limits as data: strict loader of rules/contract.yaml.

``load_contract_rules(path)`` validates the file strictly (unknown keys, bad durations, a level-1 limit
not above its level-2 limit, a missing category...) and raises ``weibao.core.errors.ConfigError`` listing every
problem with file, line and key. What it returns is plain frozen data:

- ``ContractRules.categories[category].rows``: one ``RuleRow`` per row of the contract's fault table
  (condition, scope single/day/month, hours working/non_working/any, level-2 and level-1 durations,
  threshold for loss and latency);
- ``ContractRules.clocks``: the response / restoration / report limit per level;
- ``ContractRules.evaluation``: hysteresis, re-open window, monitoring-gap threshold, upstream tolerance;
- ``ContractRules.inspection_danger_after``: how long an inspection danger persists before it opens a
  level-3 fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from weibao.collector.contract.durations import parse_duration
from weibao.core.errors import ConfigError, Problem
from weibao.core.inventory import Category
from weibao.core.yamlsrc import load_yaml, pydantic_problems

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class Condition(StrEnum):
    """What is wrong: which samples decide good or bad (see ``episodes.observation_from_sample``)."""

    DOWN = "down"          # metric ``up`` is 0
    CUT_OFF = "cut_off"    # metric ``up`` of the device that links a provincial network to the backbone
    LOSS = "loss"          # ``icmp.loss_pct`` >= threshold
    LATENCY = "latency"    # ``icmp.rtt_ms`` >= threshold
    # ``icmp.loss_pct`` >= loss_pct or ``icmp.rtt_ms`` >= latency_ms: one condition (contract.md), so an hour
    # of loss then an hour of latency is two hours of it
    LOSS_OR_LATENCY = "loss_or_latency"


class Scope(StrEnum):
    SINGLE = "single"      # one fault episode
    DAY = "day"            # all episodes of the device and condition on one calendar day
    MONTH = "month"        # ... in one calendar month


class Hours(StrEnum):
    WORKING = "working"
    NON_WORKING = "non_working"
    ANY = "any"


class LimitKind(StrEnum):
    ELAPSED = "elapsed"        # wall-clock time
    WORKING = "working"        # working time only (calendar)
    DAY_END = "day_end"        # end of the calendar day of the start, plus ``days_after`` days


@dataclass(frozen=True, slots=True)
class ClockLimit:
    kind: LimitKind
    amount: timedelta = timedelta()
    days_after: int = 0

    @classmethod
    def parse(cls, text: str) -> ClockLimit:
        """"5m", "8h" (elapsed), "9h working" (working time), "same_day", "next_day"."""
        text = text.strip()
        if text == "same_day":
            return cls(LimitKind.DAY_END, days_after=0)
        if text == "next_day":
            return cls(LimitKind.DAY_END, days_after=1)
        if text.endswith(" working"):
            return cls(LimitKind.WORKING, parse_duration(text.removesuffix(" working")))
        return cls(LimitKind.ELAPSED, parse_duration(text))


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One row of the fault table: the condition holds for ``level_2`` / ``level_1`` or longer."""

    id: str
    category: Category
    condition: Condition
    scope: Scope
    hours: Hours
    level_2: timedelta
    level_1: timedelta
    threshold: float | None = None  # loss (percent) or latency (ms); loss for loss_or_latency
    text: str = ""
    latency: float | None = None    # the latency (ms) of a loss_or_latency row

    @property
    def key(self) -> TrackKey:
        return TrackKey(self.condition, self.threshold, self.latency)


@dataclass(frozen=True, slots=True)
class TrackKey:
    """One thing to track per device: a condition and, for loss and latency, its threshold(s)."""

    condition: Condition
    threshold: float | None = None
    latency: float | None = None  # the second threshold of loss_or_latency

    @property
    def suffix(self) -> str:
        """What tells this key apart from another of the same condition: ``@30`` or ``@30/800``."""
        if self.threshold is None:
            return ""
        return f"@{self.threshold:g}" + (f"/{self.latency:g}" if self.latency is not None else "")


@dataclass(frozen=True, slots=True)
class CategoryRules:
    category: Category
    rows: tuple[RuleRow, ...]

    def tracked(self) -> tuple[TrackKey, ...]:
        """The distinct (condition, thresholds) the rows of this category need tracked."""
        return tuple(dict.fromkeys(r.key for r in self.rows))

    def rows_for(self, key: TrackKey) -> tuple[RuleRow, ...]:
        return tuple(r for r in self.rows if r.key == key)


class ClockName(StrEnum):
    RESPONSE = "response"
    RESTORATION = "restoration"
    REPORT = "report"
    ONSITE = "onsite"  # the service table's on-site support (arrival) after an engineer is dispatched


@dataclass(frozen=True, slots=True)
class ClockRules:
    limits: Mapping[ClockName, Mapping[int, ClockLimit]]

    def limit(self, clock: ClockName, level: int) -> ClockLimit:
        return self.limits[clock][level]


class WorkingSingle(StrEnum):
    """How an outage that crosses the end (or start) of working hours counts for the "in working hours,
    single" rows: the contract does not say."""

    IN_HOURS_PART = "in_hours_part"    # only its time inside working hours counts (17:00-19:00 is 30 min)
    WHOLE_OUTAGE = "whole_outage"      # all of it, once any part of it lies in working hours (2 h)


@dataclass(frozen=True, slots=True)
class EvaluationSettings:
    clear_after_good_samples: int = 3
    hold_down: timedelta = timedelta()
    reopen_window: timedelta = timedelta(minutes=30)
    gap_after_missed_probes: float = 3.0
    default_probe_interval: timedelta = timedelta(seconds=60)
    upstream_tolerance: timedelta = timedelta(minutes=2)
    working_single: WorkingSingle = WorkingSingle.IN_HOURS_PART


@dataclass(frozen=True, slots=True)
class ContractRules:
    file: str
    clocks: ClockRules
    evaluation: EvaluationSettings
    inspection_danger_after: timedelta
    categories: Mapping[Category, CategoryRules]

    def rule(self, rule_id: str) -> RuleRow:
        for cat in self.categories.values():
            for row in cat.rows:
                if row.id == rule_id:
                    return row
        raise KeyError(rule_id)


# --- file schema -------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_duration(v: str) -> str:
    if not isinstance(v, str):
        raise ValueError("write a duration as text, e.g. 1h30m")
    parse_duration(v)
    return v


def _check_limit(v: str) -> str:
    if not isinstance(v, str):
        raise ValueError("write a limit as text: 5m, 8h, '9h working', same_day or next_day")
    ClockLimit.parse(v)
    return v


class _ClockLevels(_Strict):
    level_1: str
    level_2: str
    level_3: str

    _limits = field_validator("level_1", "level_2", "level_3")(_check_limit)


class _Clocks(_Strict):
    response: _ClockLevels
    restoration: _ClockLevels
    report: _ClockLevels
    # the service table: on-site arrival within 15 min / 30 min / 1 h of the dispatch
    onsite: _ClockLevels = _ClockLevels(level_1="15m", level_2="30m", level_3="1h")


class _Evaluation(_Strict):
    clear_after_good_samples: int = Field(ge=1, le=100)
    hold_down: str
    reopen_window: str
    gap_after_missed_probes: float = Field(gt=1, le=100)
    default_probe_interval: str
    upstream_tolerance: str
    working_hours_single: WorkingSingle = WorkingSingle.IN_HOURS_PART

    _durations = field_validator("hold_down", "reopen_window", "default_probe_interval",
                                 "upstream_tolerance")(_check_duration)


class _Inspection(_Strict):
    danger_opens_level_3_after: str

    _durations = field_validator("danger_opens_level_3_after")(_check_duration)


class _Row(_Strict):
    id: str
    text: str = ""
    condition: Condition
    scope: Scope
    hours: Hours
    threshold: float | None = Field(None, gt=0)
    loss_pct: float | None = Field(None, gt=0, le=100)   # loss_or_latency
    latency_ms: float | None = Field(None, gt=0)         # loss_or_latency
    level_2: str
    level_1: str

    _durations = field_validator("level_2", "level_1")(_check_duration)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("rule ids use lower-case letters, digits, '.', '_' and '-'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> _Row:
        measured = self.condition in (Condition.LOSS, Condition.LATENCY)
        both = self.condition == Condition.LOSS_OR_LATENCY
        if both and (self.loss_pct is None or self.latency_ms is None or self.threshold is not None):
            raise ValueError("a loss_or_latency row needs 'loss_pct' and 'latency_ms' (and no 'threshold')")
        if not both and (self.loss_pct is not None or self.latency_ms is not None):
            raise ValueError(f"a {self.condition} row takes no 'loss_pct' or 'latency_ms'")
        if measured and self.threshold is None:
            raise ValueError(f"a {self.condition} row needs 'threshold'")
        if not measured and self.threshold is not None:
            raise ValueError(f"a {self.condition} row takes no 'threshold'")
        if self.condition == Condition.LOSS and self.threshold is not None and self.threshold > 100:
            raise ValueError("a loss threshold is a percentage (at most 100)")
        if parse_duration(self.level_1) <= parse_duration(self.level_2):
            raise ValueError("level_1 must be longer than level_2 (level 1 is the graver fault)")
        if parse_duration(self.level_2) <= timedelta():
            raise ValueError("level_2 must be longer than zero")
        return self


class _File(_Strict):
    version: Literal[1]
    clocks: _Clocks
    evaluation: _Evaluation
    inspection: _Inspection
    categories: dict[Category, list[_Row]]


def load_contract_rules(path: Path | str) -> ContractRules:
    """Load and validate rules/contract.yaml; raises ConfigError (file, line, key) on any problem."""
    src = load_yaml(Path(path))
    try:
        f = _File.model_validate(src.data)
    except ValidationError as exc:
        raise ConfigError(pydantic_problems(src, exc)) from exc
    problems: list[Problem] = []
    seen: dict[str, tuple[str, int]] = {}
    for cat, rows in f.categories.items():
        for i, row in enumerate(rows):
            if row.id in seen:
                problems.append(src.problem(("categories", cat.value, i, "id"),
                                            f"duplicate rule id {row.id!r}"))
            seen[row.id] = (cat.value, i)
    for cat in Category:
        if cat not in f.categories:
            problems.append(src.problem(("categories",), f"category {cat.value!r} is missing "
                                        "(write an empty list if no row applies)"))
    if problems:
        raise ConfigError(problems)
    clocks = ClockRules(MappingProxyType({
        ClockName(name): MappingProxyType({
            lvl: ClockLimit.parse(getattr(levels, f"level_{lvl}")) for lvl in (1, 2, 3)})
        for name, levels in f.clocks
    }))
    e = f.evaluation
    evaluation = EvaluationSettings(
        clear_after_good_samples=e.clear_after_good_samples, hold_down=parse_duration(e.hold_down),
        reopen_window=parse_duration(e.reopen_window), gap_after_missed_probes=e.gap_after_missed_probes,
        default_probe_interval=parse_duration(e.default_probe_interval),
        upstream_tolerance=parse_duration(e.upstream_tolerance), working_single=e.working_hours_single)
    if evaluation.default_probe_interval <= timedelta():
        raise ConfigError([src.problem(("evaluation", "default_probe_interval"), "must be longer than 0s")])
    categories = {
        cat: CategoryRules(cat, tuple(
            RuleRow(id=r.id, category=cat, condition=r.condition, scope=r.scope, hours=r.hours,
                    level_2=parse_duration(r.level_2), level_1=parse_duration(r.level_1),
                    threshold=r.loss_pct if r.condition == Condition.LOSS_OR_LATENCY else r.threshold,
                    text=r.text, latency=r.latency_ms) for r in rows))
        for cat, rows in f.categories.items()
    }
    return ContractRules(file=src.file, clocks=clocks, evaluation=evaluation,
                         inspection_danger_after=parse_duration(f.inspection.danger_opens_level_3_after),
                         categories=MappingProxyType(categories))
