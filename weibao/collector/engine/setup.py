"""Find and load what the contract engine needs, once at start-up: a bad file fails before the first batch.

The contract rules are looked up in this order: the configured path, ``$WEIBAO_RULES/contract.yaml``,
``rules/contract.yaml`` under the working directory, then the copy beside the installed package (a
checkout or an editable install). The inspection rules (for dangers that persist) follow the same order,
and are optional. Devices come from the state store (registered by agents with PUT /api/v1/inventory).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NaiveDatetime, ValidationError
from sqlalchemy import Engine, func, select

from weibao.collector.config import ContractConfig
from weibao.collector.contract import (
    ContractRules,
    DeviceSpec,
    MaintenanceWindow,
    WorkingCalendar,
    device_spec,
    load_calendar,
    load_contract_rules,
)
from weibao.collector.notify.config import NotifyConfig, load_notify_config
from weibao.collector.state.models import Device
from weibao.core.errors import ConfigError, Problem
from weibao.core.inspection.rules import InspectionRules, ThresholdCheck, load_inspection_rules
from weibao.core.inventory import Category
from weibao.core.packaged import rules_search_path
from weibao.core.timeutil import SHANGHAI
from weibao.core.yamlsrc import load_yaml, pydantic_problems

log = logging.getLogger(__name__)



def find_rules(configured: Path | None, name: str, *, required: bool = True) -> Path | None:
    """The rules file ``name``: configured path, $WEIBAO_RULES, ./rules, then beside the package."""
    if configured is not None:
        if not configured.is_file():
            raise ConfigError([Problem("<collector config>", None, "contract", f"{configured}: no such file")])
        return configured
    candidates = [d / name for d in rules_search_path()]
    for c in candidates:
        if c.is_file():
            return c
    if required:
        raise ConfigError([Problem("<collector config>", None, "contract.rules",
                                   f"{name} not found (looked in {', '.join(map(str, candidates))})")])
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Window(_Strict):
    devices: list[str] = Field(min_length=1)
    start: AwareDatetime | NaiveDatetime  # naive times are Asia/Shanghai, as in the calendar files
    end: AwareDatetime | NaiveDatetime
    reason: str = ""


class _WindowFile(_Strict):
    windows: list[_Window] = []


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=SHANGHAI)


def load_maintenance_file(path: Path) -> list[MaintenanceWindow]:
    """Windows from a YAML file ``windows: [{devices: [..], start, end, reason}]``; ConfigError on problems."""
    src = load_yaml(path)
    try:
        f = _WindowFile.model_validate(src.data or {})
    except ValidationError as exc:
        raise ConfigError(pydantic_problems(src, exc)) from exc
    out: list[MaintenanceWindow] = []
    problems: list[Problem] = []
    for i, w in enumerate(f.windows):
        try:
            out.append(MaintenanceWindow(frozenset(w.devices), _aware(w.start), _aware(w.end), w.reason))
        except ValueError as exc:
            problems.append(src.problem(("windows", i), str(exc)))
    if problems:
        raise ConfigError(problems)
    return out


@dataclass(frozen=True)
class ContractFiles:
    """Everything loaded from files; validated as a whole at start-up."""

    rules: ContractRules
    calendar: WorkingCalendar
    notify: NotifyConfig
    windows: tuple[MaintenanceWindow, ...] = ()
    danger_checks: tuple[ThresholdCheck, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)


def load_files(cfg: ContractConfig) -> ContractFiles:
    """Load and validate every file the contract section names (ConfigError lists the problems)."""
    rules_path = find_rules(cfg.rules, "contract.yaml")
    assert rules_path is not None
    rules = load_contract_rules(rules_path)
    calendar = load_calendar(*cfg.calendar)
    notify = load_notify_config(cfg.notify) if cfg.notify is not None else NotifyConfig()
    unknown = sorted({(p.name, ch) for p in calendar.protection for ch in p.notify if ch not in notify.channels})
    if unknown:
        raise ConfigError([Problem(str(cfg.calendar[-1] if cfg.calendar else "calendar"), 1,
                                   f"protection_periods.{name}.notify.{ch}",
                                   f"no channel {ch!r} in the notify config ({cfg.notify or 'none given'})")
                           for name, ch in unknown])
    windows = tuple(load_maintenance_file(cfg.maintenance)) if cfg.maintenance is not None else ()
    insp_path = cfg.inspection_rules
    if insp_path is None:
        beside = rules_path.parent / "inspection.yaml"
        insp_path = beside if beside.is_file() else None
    checks: tuple[ThresholdCheck, ...] = ()
    if insp_path is not None:
        insp: InspectionRules = load_inspection_rules(insp_path)
        checks = tuple(c for c in insp.checks if isinstance(c, ThresholdCheck))
    sources = {"rules": str(rules_path), "inspection": str(insp_path or "")}
    log.info("contract rules from %s, inspection dangers from %s", rules_path, insp_path or "(none)")
    return ContractFiles(rules, calendar, notify, windows, checks, sources)


@dataclass(frozen=True)
class DeviceBook:
    """The registered devices as the engine sees them: evaluator specs, kinds, and which agent polls each."""

    specs: dict[str, DeviceSpec]
    kinds: dict[str, str]
    agents: dict[str, str]
    stamp: tuple[int, int]  # (count, newest update): a change means "rebuild the evaluator"
    # hops up the depends_on chain: at equal times an upstream is evaluated before its dependents, so
    # that they attach to its ticket instead of opening tickets of their own first
    depth: dict[str, int]


def device_stamp(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        row = conn.execute(select(func.count(), func.max(Device.updated_ms))).one()
    return int(row[0] or 0), int(row[1] or 0)


def load_devices(engine: Engine) -> DeviceBook:
    """Every active registered device (its spec from the registration, ``device_spec``)."""
    with engine.connect() as conn:
        rows = conn.execute(select(Device.name, Device.category, Device.depends_on, Device.kind, Device.agent,
                                   Device.spec).where(Device.active.is_(True))).all()
    specs: dict[str, DeviceSpec] = {}
    kinds: dict[str, str] = {}
    agents: dict[str, str] = {}
    for r in rows:
        try:
            spec = json.loads(r.spec or "{}")
        except ValueError:
            spec = {}
        specs[r.name] = replace(device_spec(spec), name=r.name, category=Category(r.category),
                                depends_on=r.depends_on)
        kinds[r.name] = r.kind
        agents[r.name] = r.agent
    return DeviceBook(specs, kinds, agents, device_stamp(engine), depths(specs))


def depths(specs: dict[str, DeviceSpec]) -> dict[str, int]:
    """Each device's number of hops up its depends_on chain (a cycle stops counting where it closes)."""
    out: dict[str, int] = {}
    for name in specs:
        seen = {name}
        up = specs[name].depends_on
        while up is not None and up in specs and up not in seen:
            seen.add(up)
            up = specs[up].depends_on
        out[name] = len(seen) - 1
    return out
