"""Strict loading of rules/inspection.yaml: the hidden-danger checks of the daily inspection, as data.

A file holds ``version: 1`` and a list of ``checks``. Every check has an ``id``, a ``check`` type, an
optional ``kinds`` filter and message / recommendation templates in zh and en; the other keys depend on
the type:

    threshold         metric, op (>= > <= < ==), levels {severity: limit}   one finding per sample
    increase          metric, levels {severity: minimal rise since the last inspection}
    transition        metric, from, to, severity     value was ``from`` last time and is ``to`` now
    rebooted          severity, tolerance_s          uptime went back, or a ``rebooted`` event
    event             event (config_changed, trap...), severity
    unreachable       severity                       no ICMP answer and no SNMP/SSH answer
    protocol_failing  protocols [snmp, ssh], severity   the protocol fails while the device answers
    warranty          days_left {min, max}, severity  asset warranty end, counted in local days

Templates may use {device}, {value}, {threshold}, {label}, {previous}, {protocol} and {error}.
Thresholds live only here; the evaluator reads them from the loaded rules.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from weibao.core.errors import ConfigError, Problem
from weibao.core.inspection.model import SEVERITIES_WORST_FIRST, Severity
from weibao.core.inventory import Kind
from weibao.core.model import EventKind, Protocol
from weibao.core.yamlsrc import Located, load_yaml, pydantic_problems

# DESIGN.md's vocabulary plus the host metrics the SSH poller reports; a typo in a rule must not
# silently never fire, so rules may only name these.
METRICS: frozenset[str] = frozenset({
    "up", "icmp.loss_pct", "icmp.rtt_ms", "icmp.rtt_min_ms", "icmp.rtt_max_ms", "icmp.jitter_ms",
    "snmp.up", "ssh.up", "sys.uptime_s", "cpu.util_pct", "mem.util_pct", "disk.util_pct",
    "if.oper_up", "if.in_bps", "if.out_bps", "if.util_pct", "if.in_errors_ps", "if.out_errors_ps",
    "ups.on_battery", "ups.battery_status", "ups.battery_charge_pct", "ups.runtime_min",
    "ups.input_voltage_v", "ups.output_load_pct", "ups.temperature_c", "temp.c",
    "sys.load1", "sys.load5", "sys.load15", "systemd.failed_units",
})
PLACEHOLDERS: frozenset[str] = frozenset({"device", "value", "threshold", "label", "previous", "protocol",
                                          "error"})
UPTIME_METRIC = "sys.uptime_s"
FILE_NAME = "inspection.yaml"

Limit = Annotated[float, Field(strict=True)]  # "85" in quotes is a mistake worth reporting


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class Template(_Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class _Check(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    description: str | None = None
    kinds: list[Kind] | None = None
    message: Template
    recommendation: Template

    def applies_to(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds


OPS: Mapping[str, str] = {">=": "≥", ">": ">", "<=": "≤", "<": "<", "==": "="}
OpText = Literal[">=", ">", "<=", "<", "=="]


def compare(value: float, op: str, limit: float) -> bool:
    if op == ">=":
        return value >= limit
    if op == ">":
        return value > limit
    if op == "<=":
        return value <= limit
    if op == "<":
        return value < limit
    return value == limit


class ThresholdCheck(_Check):
    check: Literal["threshold"]
    metric: str
    op: OpText
    levels: dict[Severity, Limit] = Field(min_length=1)

    def level_of(self, value: float) -> tuple[Severity, float] | None:
        """The worst severity whose limit the value passes, with that limit."""
        for sev in SEVERITIES_WORST_FIRST:
            if sev in self.levels and compare(value, self.op, self.levels[sev]):
                return sev, self.levels[sev]
        return None


class IncreaseCheck(_Check):
    check: Literal["increase"]
    metric: str
    levels: dict[Severity, Limit] = Field(min_length=1)  # minimal rise since the last inspection

    def level_of(self, rise: float) -> tuple[Severity, float] | None:
        for sev in SEVERITIES_WORST_FIRST:
            if sev in self.levels and rise >= self.levels[sev]:
                return sev, self.levels[sev]
        return None


class TransitionCheck(_Check):
    check: Literal["transition"]
    metric: str
    from_: Limit = Field(alias="from")
    to: Limit
    severity: Severity


class RebootCheck(_Check):
    check: Literal["rebooted"]
    severity: Severity
    # clocks of device and agent disagree a little; a smaller uptime than expected by more than this is a reboot
    tolerance_s: Limit = Field(300.0, ge=0)


class EventCheck(_Check):
    check: Literal["event"]
    event: EventKind
    severity: Severity


class UnreachableCheck(_Check):
    check: Literal["unreachable"]
    severity: Severity


class ProtocolFailingCheck(_Check):
    check: Literal["protocol_failing"]
    protocols: list[Literal[Protocol.SNMP, Protocol.SSH]] = Field(min_length=1)
    severity: Severity


class DaysLeft(_Strict):
    min: int | None = None
    max: int | None = None


class WarrantyCheck(_Check):
    check: Literal["warranty"]
    days_left: DaysLeft
    severity: Severity

    def matches(self, days_left: int) -> bool:
        lo, hi = self.days_left.min, self.days_left.max
        return (lo is None or days_left >= lo) and (hi is None or days_left <= hi)


Check = (ThresholdCheck | IncreaseCheck | TransitionCheck | RebootCheck | EventCheck | UnreachableCheck
         | ProtocolFailingCheck | WarrantyCheck)
_TYPES: dict[str, type[_Check]] = {
    "threshold": ThresholdCheck, "increase": IncreaseCheck, "transition": TransitionCheck,
    "rebooted": RebootCheck, "event": EventCheck, "unreachable": UnreachableCheck,
    "protocol_failing": ProtocolFailingCheck, "warranty": WarrantyCheck,
}


class _File(_Strict):
    version: Literal[1]
    checks: list[Any] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class InspectionRules:
    """The loaded checks, in file order."""

    source: str
    checks: tuple[Check, ...]

    @property
    def remembered_metrics(self) -> frozenset[str]:
        """What the history must keep from this round so that the next run can compare with it."""
        out = {UPTIME_METRIC}
        out.update(c.metric for c in self.checks if isinstance(c, IncreaseCheck | TransitionCheck))
        return frozenset(out)


def load_inspection_rules(path: Path) -> InspectionRules:
    """Load and validate an inspection rules file; ConfigError lists every problem with file, line and key.

    ``path`` may also be the rules directory, in which case its ``inspection.yaml`` is loaded.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    src = load_yaml(path)
    if not isinstance(src.data, dict):
        raise ConfigError([Problem(src.file, 1, "", "an inspection rules file is a mapping with "
                                                    "'version: 1' and 'checks'")])
    try:
        doc = _File.model_validate(src.data)
    except ValidationError as exc:
        raise ConfigError(pydantic_problems(src, exc)) from None
    problems: list[Problem] = []
    checks: list[Check] = []
    first_line: dict[str, int | None] = {}
    for i, item in enumerate(doc.checks):
        where: tuple[str | int, ...] = ("checks", i)
        check = _one(src, where, item, problems)
        if check is None:
            continue
        if check.id in first_line:
            problems.append(src.problem((*where, "id"),
                                        f"duplicate check id {check.id!r} (first on line {first_line[check.id]})"))
            continue
        first_line[check.id] = src.line_of((*where, "id"))
        checks.append(check)
    if problems:
        raise ConfigError(problems)
    return InspectionRules(source=src.file, checks=tuple(checks))


def _one(src: Located, where: tuple[str | int, ...], item: Any, problems: list[Problem]) -> Check | None:
    if not isinstance(item, dict):
        problems.append(src.problem(where, "a check is a mapping with id, check, message and recommendation"))
        return None
    kind = item.get("check")
    model = _TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        key = (*where, "check") if "check" in item else where
        msg = "required key is missing" if "check" not in item else f"unknown check type {kind!r}"
        problems.append(src.problem(key, f"{msg} (one of: {', '.join(_TYPES)})"))
        return None
    try:
        check: Check = model.model_validate(item)  # type: ignore[assignment]  # _TYPES holds only Check members
    except ValidationError as exc:
        problems.extend(pydantic_problems(src, exc, where))
        return None
    before = len(problems)
    _semantics(src, where, check, problems)
    return check if len(problems) == before else None


def _semantics(src: Located, where: tuple[str | int, ...], check: Check, problems: list[Problem]) -> None:
    if isinstance(check, ThresholdCheck | IncreaseCheck | TransitionCheck) and check.metric not in METRICS:
        problems.append(src.problem((*where, "metric"), f"unknown metric {check.metric!r}"))
    if isinstance(check, ThresholdCheck):
        # a worse severity must need a worse value, or the milder level could never be reported
        limits = [check.levels[s] for s in SEVERITIES_WORST_FIRST if s in check.levels]
        upward = check.op in (">=", ">")
        if check.op == "==" and len(limits) > 1:
            problems.append(src.problem((*where, "levels"), "'==' takes a single level"))
        elif any((a < b) if upward else (a > b) for a, b in pairwise(limits)):
            order = "higher" if upward else "lower"
            problems.append(src.problem((*where, "levels"),
                                        f"with op {check.op!r} a worse severity needs a {order} or equal limit"))
    if isinstance(check, IncreaseCheck):
        for sev, limit in check.levels.items():
            if limit <= 0:
                problems.append(src.problem((*where, "levels", sev.value), "an increase must be greater than 0"))
    if isinstance(check, TransitionCheck) and check.from_ == check.to:
        problems.append(src.problem((*where, "to"), "'from' and 'to' are the same value"))
    if isinstance(check, WarrantyCheck):
        lo, hi = check.days_left.min, check.days_left.max
        if lo is None and hi is None:
            problems.append(src.problem((*where, "days_left"), "give 'min', 'max' or both"))
        elif lo is not None and hi is not None and lo > hi:
            problems.append(src.problem((*where, "days_left"), "'min' is greater than 'max'"))
    for field in ("message", "recommendation"):
        for lang in ("zh", "en"):
            text = getattr(getattr(check, field), lang)
            bad = _bad_placeholders(text)
            if bad:
                problems.append(src.problem((*where, field, lang),
                                            f"{bad}; placeholders are {', '.join(sorted(PLACEHOLDERS))}"))


def _bad_placeholders(text: str) -> str | None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        return f"bad template: {exc} (write {{{{ and }}}} for literal braces)"
    unknown = [f for f in fields if f not in PLACEHOLDERS]
    if unknown:
        return f"unknown placeholder {{{unknown[0]}}}"
    return None
