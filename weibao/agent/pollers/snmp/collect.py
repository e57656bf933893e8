"""Turning what one device answered into samples, facts and rate memory, as the profiles say (pure logic).

Counters become rates only across two polls: the raw counters and their time are kept (by the
caller, in the StateStore) and compared on the next poll. A counter that went backwards (a 64-bit
counter, or any counter after a reboot) or a gap of more than an hour yields no rate at all rather
than a negative or huge one; a 32-bit counter that went backwards by less than half its range is
taken to have wrapped once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from weibao.agent.pollers.snmp.expr import Expr
from weibao.agent.pollers.snmp.profiles import METRIC_LABELS, MetricRule, Profile, Table
from weibao.agent.pollers.snmp.transport import Missing, Oid, Value, oid_text
from weibao.agent.pollers.snmp.walk import Rows
from weibao.core.model import Sample

MAX_RATE_GAP_S = 3600.0


@dataclass
class Counters:
    """Raw counter readings of one device: previous (from the StateStore) and current (to be stored)."""

    prev: Mapping[str, int]
    prev_ts: float | None
    now_ts: float
    current: dict[str, int] = field(default_factory=dict)
    widths: dict[str, int] = field(default_factory=dict)

    def rate(self, key: str, value: Any, width: int) -> float | None:
        if not isinstance(value, int):
            return None
        self.current[key] = value
        if self.prev_ts is None:
            return None
        old = self.prev.get(key)
        dt = self.now_ts - self.prev_ts
        if old is None or dt <= 0 or dt > MAX_RATE_GAP_S:
            return None
        delta = value - old
        if delta < 0:
            if width != 32:
                return None
            delta += 2**32  # one wrap of a 32-bit counter...
            if delta >= 2**31:
                return None  # ...unless it is far more likely to have been reset
        return delta / dt

    def state(self) -> dict[str, Any]:
        return {"ts": self.now_ts, "v": self.current}


@dataclass
class Collected:
    samples: list[Sample] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=set)

    def add(self, device: str, metric: str, value: float, ts: datetime, labels: dict[str, str]) -> None:
        key = (metric, tuple(sorted(labels.items())))
        if key in self.seen:  # an earlier (higher-priority) profile already gave this reading
            return
        self.seen.add(key)
        self.samples.append(Sample(device, metric, float(value), ts, labels))


def _clean(v: Value | None) -> Any:
    return None if isinstance(v, Missing) else v


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    return None


def _ok(rule: MetricRule, value: float | None) -> bool:
    if value is None:
        return False
    return rule.valid is None or rule.valid[0] <= value <= rule.valid[1]


def _apply_derive(env: dict[str, Any], derive: Iterable[tuple[str, Expr]], rate: Any) -> None:
    for name, e in derive:
        env[name] = e(env, rate)


def scalars_env(profile: Profile, values: Mapping[Oid, Value], counters: Counters) -> tuple[dict[str, Any], Any]:
    env: dict[str, Any] = {c.name: _clean(values.get(c.oid)) for c in profile.scalars}
    widths = {c.name: c.counter for c in profile.scalars if c.counter}

    def rate(name: str) -> float | None:
        return counters.rate(f"{profile.name}/{name}", env.get(name), widths.get(name, 64))

    _apply_derive(env, profile.derive, rate)
    return env, rate


def collect_profile(device: str, ts: datetime, profile: Profile, scalars: Mapping[Oid, Value], rows: Rows,
                    counters: Counters, out: Collected) -> None:
    """Add the samples and facts of one profile to ``out``."""
    env, rate = scalars_env(profile, scalars, counters)
    for rule in profile.metrics:
        if rule.where is not None and not rule.where(env, rate):
            continue
        value = _number(rule.expr(env, rate))
        if _ok(rule, value):
            assert value is not None
            labels = {}
            if rule.label is not None:
                labels[METRIC_LABELS[rule.metric]] = str(rule.label(env, rate) or "")
            out.add(device, rule.metric, value, ts, labels)
    for name, e in profile.facts:
        v = e(env, rate)
        if v is not None and v != "":
            out.facts[name] = v
    for table in profile.tables:
        _collect_table(device, ts, profile, table, rows, counters, out)


def table_rows(table: Table, rows: Rows) -> list[tuple[str, dict[str, Any]]]:
    """The rows of a profile table that hold at least one of its columns, as (index, name -> value)."""
    out = []
    for index, cols in sorted(rows.items()):
        row = {c.name: _clean(cols.get(c.oid)) for c in table.columns}
        if any(v is not None for v in row.values()):
            idx = oid_text(index)
            row["index"] = idx
            out.append((idx, row))
    return out


def _collect_table(device: str, ts: datetime, profile: Profile, table: Table, rows: Rows,
                   counters: Counters, out: Collected) -> None:
    widths = {c.name: c.counter or 64 for c in table.columns}
    per_rule: list[list[tuple[float, str | None]]] = [[] for _ in table.metrics]
    fact_rows: list[dict[str, Any]] = []
    for idx, env in table_rows(table, rows):
        def rate(name: str, env: dict[str, Any] = env, idx: str = idx) -> float | None:
            return counters.rate(f"{profile.name}/{table.name}/{name}/{idx}", env.get(name), widths.get(name, 64))

        _apply_derive(env, table.derive, rate)
        for i, rule in enumerate(table.metrics):
            if rule.where is not None and not rule.where(env, rate):
                continue
            value = _number(rule.expr(env, rate))
            if not _ok(rule, value):
                continue
            assert value is not None
            label = None
            if rule.label is not None:
                raw = rule.label(env, rate)
                label = str(raw).strip() if raw not in (None, "") else f"#{idx}"
            per_rule[i].append((value, label))
        if table.fact is not None:
            item = {k: v for k, e in table.fact[1] if (v := e(env, rate)) is not None}
            if item:
                fact_rows.append(item)
    for rule, values in zip(table.metrics, per_rule, strict=True):
        if not values:
            continue
        if rule.reduce == "each":
            label_key = METRIC_LABELS[rule.metric]
            used: dict[str, int] = {}
            for value, label in values:
                name = label or ""
                used[name] = used.get(name, 0) + 1
                if used[name] > 1:  # two rows with one name (e.g. two "NULL0"): keep both, distinguishable
                    name = f"{name} ({used[name]})"
                out.add(device, rule.metric, value, ts, {label_key: name})
            continue
        nums = [v for v, _ in values]
        agg = {"avg": sum(nums) / len(nums), "max": max(nums), "min": min(nums), "sum": sum(nums)}[rule.reduce]
        out.add(device, rule.metric, agg, ts, {})
    if table.fact is not None and fact_rows:
        out.facts.setdefault(table.fact[0], []).extend(fact_rows)


def profile_absent(profile: Profile, scalars: Mapping[Oid, Value], rows: Rows) -> bool:
    """True when the device answered none of the profile's scalars and none of its tables' key columns.

    A table's key column is its first one; later columns may be shared ones joined by index (such
    as ENTITY-MIB's entPhysicalName), whose presence says nothing about the profile's own MIB.
    """
    if any(not isinstance(scalars.get(c.oid, Missing("")), Missing) for c in profile.scalars):
        return False
    keys = {t.columns[0].oid for t in profile.tables if t.columns}
    return not any(col in keys for cols in rows.values() for col in cols)
