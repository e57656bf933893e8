"""SNMP profiles: the YAML files in ``agent/profiles/`` that say which OIDs to read and how they become metrics.

A profile lists scalars and table columns by numeric OID (nothing parses MIBs at run time), the
metrics computed from them with the expression language of ``expr.py``, and facts for the
inspection report. ``match`` says which devices it applies to: a sysObjectID prefix, a sysDescr
regular expression, or ``always`` (tried on every device; a device that lacks the MIB is remembered
and skipped). Files are validated strictly: an unknown key, a bad OID, an expression naming an
unknown column or a metric outside the vocabulary is an error naming file, line and key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from weibao.agent.pollers.snmp.expr import Expr, ExprError, compile_expr
from weibao.core.errors import ConfigError, Problem
from weibao.core.yamlsrc import load_yaml, pydantic_problems

_OID = re.compile(r"^1\.3(\.\d+)+$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Metric(StrEnum):
    """The SNMP part of the metric vocabulary (DESIGN.md); a profile can only produce these."""

    UPTIME = "sys.uptime_s"
    CPU = "cpu.util_pct"
    MEM = "mem.util_pct"
    DISK = "disk.util_pct"
    IF_OPER_UP = "if.oper_up"
    IF_IN_BPS = "if.in_bps"
    IF_OUT_BPS = "if.out_bps"
    IF_UTIL = "if.util_pct"
    IF_IN_ERR = "if.in_errors_ps"
    IF_OUT_ERR = "if.out_errors_ps"
    UPS_ON_BATTERY = "ups.on_battery"
    UPS_BATTERY_STATUS = "ups.battery_status"
    UPS_CHARGE = "ups.battery_charge_pct"
    UPS_RUNTIME = "ups.runtime_min"
    UPS_INPUT_V = "ups.input_voltage_v"
    UPS_LOAD = "ups.output_load_pct"
    UPS_TEMP = "ups.temperature_c"
    TEMP = "temp.c"


# which label each labelled metric carries (DESIGN.md)
METRIC_LABELS: dict[Metric, str] = {
    Metric.DISK: "mount", Metric.TEMP: "sensor",
    Metric.IF_OPER_UP: "ifName", Metric.IF_IN_BPS: "ifName", Metric.IF_OUT_BPS: "ifName",
    Metric.IF_UTIL: "ifName", Metric.IF_IN_ERR: "ifName", Metric.IF_OUT_ERR: "ifName",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_oid(v: str) -> str:
    v = str(v).strip()
    if not _OID.match(v):
        raise ValueError(f"{v!r} is not a numeric OID such as 1.3.6.1.2.1.1.3")
    return v


class ColumnSpec(_Strict):
    oid: str
    counter: Literal[32, 64] | None = None  # a counter that rate() may be applied to, with its width

    @field_validator("oid")
    @classmethod
    def _oid(cls, v: str) -> str:
        return _check_oid(v)


ColumnDef = Annotated[str, AfterValidator(_check_oid)] | ColumnSpec


class Match(_Strict):
    always: bool = False
    sys_object_id: list[str] = Field(default_factory=list)  # prefixes
    sys_descr: list[str] = Field(default_factory=list)  # regular expressions, searched

    @field_validator("sys_object_id")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        return [_check_oid(p.rstrip(".")) for p in v]

    @field_validator("sys_descr")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        for r in v:
            try:
                re.compile(r)
            except re.error as exc:
                raise ValueError(f"bad regular expression {r!r}: {exc}") from exc
        return v


class TableFact(_Strict):
    name: str
    fields: dict[str, str]


class TableSpec(_Strict):
    name: str
    columns: dict[str, ColumnDef]
    derive: dict[str, str] = Field(default_factory=dict)  # per-row named expressions, in order
    fact: TableFact | None = None


class MetricSpec(_Strict):
    metric: Metric
    table: str | None = None  # None: computed from the profile's scalars
    expr: str
    where: str | None = None
    reduce: Literal["each", "avg", "max", "min", "sum"] = "each"
    label: str | None = None  # expression for the metric's label (ifName, mount, sensor)
    valid: tuple[float, float] | None = None  # outside this closed range the value is dropped

    @model_validator(mode="after")
    def _label_rules(self) -> MetricSpec:
        wanted = METRIC_LABELS.get(self.metric)
        per_row = self.table is not None and self.reduce == "each"
        if wanted and per_row and self.label is None:
            raise ValueError(f"{self.metric} is labelled by {wanted}: give 'label'")
        if self.label is not None and not wanted:
            raise ValueError(f"{self.metric} takes no label")
        if self.label is not None and self.table is not None and self.reduce != "each":
            raise ValueError("a reduced metric is one reading: it takes no label")
        if self.valid is not None and self.valid[0] > self.valid[1]:
            raise ValueError("valid: [low, high] with low <= high")
        return self


class ProfileFile(_Strict):
    name: str
    description: str
    priority: int = 50  # lower first: when two profiles give the same metric, the first one wins
    match: Match
    scalars: dict[str, ColumnDef] = Field(default_factory=dict)
    derive: dict[str, str] = Field(default_factory=dict)  # named expressions over scalars
    tables: list[TableSpec] = Field(default_factory=list)
    metrics: list[MetricSpec] = Field(default_factory=list)
    facts: dict[str, str] = Field(default_factory=dict)  # fact name -> expression over scalars


# --- compiled form used by the collector -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    oid: tuple[int, ...]
    counter: int | None


@dataclass(frozen=True, slots=True)
class MetricRule:
    metric: Metric
    expr: Expr
    where: Expr | None
    reduce: str
    label: Expr | None
    valid: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    derive: tuple[tuple[str, Expr], ...]
    metrics: tuple[MetricRule, ...]
    fact: tuple[str, tuple[tuple[str, Expr], ...]] | None


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    priority: int
    always: bool
    sys_object_id: tuple[str, ...]
    sys_descr: tuple[re.Pattern[str], ...]
    scalars: tuple[Column, ...]
    derive: tuple[tuple[str, Expr], ...]
    metrics: tuple[MetricRule, ...]  # over scalars
    facts: tuple[tuple[str, Expr], ...]
    tables: tuple[Table, ...]
    source: str

    def matches(self, sys_object_id: str | None, sys_descr: str | None) -> bool:
        if self.always:
            return True
        oid = (sys_object_id or "").strip(".")
        if any(oid == p or oid.startswith(p + ".") for p in self.sys_object_id):
            return True
        return bool(sys_descr) and any(r.search(sys_descr or "") for r in self.sys_descr)

    def oids(self) -> list[tuple[int, ...]]:
        return [c.oid for c in self.scalars] + [c.oid for t in self.tables for c in t.columns]


def _column(name: str, d: str | ColumnSpec) -> Column:
    spec = d if isinstance(d, ColumnSpec) else ColumnSpec(oid=d)
    return Column(name, tuple(int(p) for p in spec.oid.split(".")), spec.counter)


class _Compiler:
    """Turns one validated ProfileFile into a Profile, collecting located problems."""

    def __init__(self, src_file: str, locate: object) -> None:
        self.file = src_file
        self.locate = locate
        self.problems: list[Problem] = []

    def expr(self, path: tuple[str | int, ...], source: str, known: set[str], counters: set[str]) -> Expr | None:
        try:
            e = compile_expr(source)
        except ExprError as exc:
            self.problems.append(self.locate.problem(path, str(exc)))  # type: ignore[attr-defined]
            return None
        unknown = sorted(e.names - known)
        if unknown:
            self.problems.append(self.locate.problem(  # type: ignore[attr-defined]
                path, f"unknown name(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"))
            return None
        not_counters = sorted(e.rated - counters)
        if not_counters:
            self.problems.append(self.locate.problem(  # type: ignore[attr-defined]
                path, f"rate() needs a column declared with 'counter: 32|64': {', '.join(not_counters)}"))
            return None
        return e

    def named(self, base: tuple[str | int, ...], items: dict[str, str], known: set[str],
              counters: set[str]) -> tuple[tuple[str, Expr], ...]:
        out = []
        for key, source in items.items():
            if not _IDENT.match(key):
                self.problems.append(self.locate.problem((*base, key), "names are identifiers"))  # type: ignore[attr-defined]
                continue
            e = self.expr((*base, key), source, known, counters)
            known.add(key)
            if e is not None:
                out.append((key, e))
        return tuple(out)

    def rule(self, i: int, m: MetricSpec, known: set[str], counters: set[str]) -> MetricRule | None:
        base: tuple[str | int, ...] = ("metrics", i)
        e = self.expr((*base, "expr"), m.expr, known, counters)
        where = self.expr((*base, "where"), m.where, known, counters) if m.where else None
        label = self.expr((*base, "label"), m.label, known, counters) if m.label else None
        if e is None or (m.where and where is None) or (m.label and label is None):
            return None
        return MetricRule(m.metric, e, where, m.reduce, label, m.valid)

    def compile(self, pf: ProfileFile) -> Profile:
        for key in [*pf.scalars, *(c for t in pf.tables for c in t.columns)]:
            if not _IDENT.match(key):
                self.problems.append(self.locate.problem(("scalars",), f"{key!r}: names are identifiers"))  # type: ignore[attr-defined]
        scalars = tuple(_column(k, v) for k, v in pf.scalars.items())
        s_known = {c.name for c in scalars}
        s_counters = {c.name for c in scalars if c.counter}
        derive = self.named(("derive",), pf.derive, s_known, s_counters)
        tables = []
        table_names = {t.name for t in pf.tables}
        t_known: dict[str, set[str]] = {}
        t_counters: dict[str, set[str]] = {}
        for ti, t in enumerate(pf.tables):
            cols = tuple(_column(k, v) for k, v in t.columns.items())
            known = {c.name for c in cols} | {"index"}
            counters = {c.name for c in cols if c.counter}
            tderive = self.named(("tables", ti, "derive"), t.derive, known, counters)
            fact = None
            if t.fact is not None:
                fields = self.named(("tables", ti, "fact", "fields"), t.fact.fields, set(known), counters)
                fact = (t.fact.name, fields)
            t_known[t.name], t_counters[t.name] = known, counters
            tables.append((t, cols, tderive, fact))
        scalar_rules: list[MetricRule] = []
        table_rules: dict[str, list[MetricRule]] = {t.name: [] for t in pf.tables}
        for i, m in enumerate(pf.metrics):
            if m.table is not None and m.table not in table_names:
                self.problems.append(self.locate.problem(("metrics", i, "table"), f"no table named {m.table!r}"))  # type: ignore[attr-defined]
                continue
            known = set(t_known[m.table]) if m.table else set(s_known)
            counters = t_counters[m.table] if m.table else s_counters
            r = self.rule(i, m, known, counters)
            if r is not None:
                (table_rules[m.table] if m.table else scalar_rules).append(r)
        facts = self.named(("facts",), pf.facts, set(s_known), s_counters)
        return Profile(
            name=pf.name, description=pf.description, priority=pf.priority, always=pf.match.always,
            sys_object_id=tuple(pf.match.sys_object_id), sys_descr=tuple(re.compile(r) for r in pf.match.sys_descr),
            scalars=scalars, derive=derive, metrics=tuple(scalar_rules), facts=facts,
            tables=tuple(Table(t.name, cols, td, tuple(table_rules[t.name]), fact) for t, cols, td, fact in tables),
            source=self.file)


def load_profile(path: Path) -> Profile:
    """Load and validate one profile file; raises ConfigError with every problem found."""
    src = load_yaml(path)
    try:
        pf = ProfileFile.model_validate(src.data)
    except ValidationError as exc:
        raise ConfigError(pydantic_problems(src, exc)) from exc
    comp = _Compiler(src.file, src)
    profile = comp.compile(pf)
    if pf.name != path.stem:
        comp.problems.append(src.problem(("name",), f"name must match the file name ({path.stem!r})"))
    if comp.problems:
        raise ConfigError(comp.problems)
    return profile


def default_profile_dir() -> Path:
    return Path(str(resources.files("weibao.agent") / "profiles"))


def load_profiles(directory: Path | None = None) -> dict[str, Profile]:
    """Every ``*.yaml`` profile of a directory (default: the packaged ones), by name, validated."""
    directory = directory or default_profile_dir()
    problems: list[Problem] = []
    out: dict[str, Profile] = {}
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError([Problem(str(directory), None, "", "no profile files (*.yaml) found")])
    for f in files:
        try:
            p = load_profile(f)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        out[p.name] = p
    if "system" not in out and not problems:
        problems.append(Problem(str(directory), None, "", "the 'system' profile is required"))
    if problems:
        raise ConfigError(problems)
    return out


def check_profiles(directory: Path | None = None) -> list[Problem]:
    """For ``weibao check``: every problem in the profile files, or an empty list when all are valid."""
    try:
        load_profiles(directory)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def check_device_profiles(names: Iterable[str], profiles: dict[str, Profile]) -> list[str]:
    """Names a device forces (``snmp.profiles``) that no profile file defines."""
    return [n for n in names if n not in profiles]


def select(profiles: dict[str, Profile], sys_object_id: str | None, sys_descr: str | None,
           forced: Sequence[str] | None) -> list[Profile]:
    """The profiles for one device, in priority order; ``system`` is always first."""
    if forced is not None:
        chosen = [profiles[n] for n in forced if n in profiles and n != "system"]
    else:
        chosen = [p for p in profiles.values() if p.name != "system" and p.matches(sys_object_id, sys_descr)]
    return [profiles["system"], *sorted(chosen, key=lambda p: (p.priority, p.name))]
