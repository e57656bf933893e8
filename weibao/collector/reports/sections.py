"""Report sections read from events, rollups and windows: resources, UPS, changes, maintenance, gaps, findings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from weibao.collector.contract.intervals import Interval, clip_all
from weibao.collector.contract.maintenance import MaintenanceWindow
from weibao.collector.reports.availability import DeviceTime
from weibao.collector.reports.source import (
    BUCKET_S,
    DeviceInfo,
    StoredEvent,
    bucket_series,
    on_battery_buckets,
    series_stats,
)
from weibao.collector.tickets.model import Ticket

RESOURCE_METRICS = ("cpu.util_pct", "mem.util_pct", "disk.util_pct", "if.util_pct")
TOP = 10
GAPS_LISTED = 20
UPS_RULE = "ups_on_battery"


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _r(value: float) -> float:
    return round(value, 3)


def resources(engine: Engine, start: datetime, end: datetime, resolution: int) -> dict[str, Any]:
    """Per metric: the top 10 series by 95th percentile, with their peak (from the rollups)."""
    stats = series_stats(engine, RESOURCE_METRICS, start, end, resolution)
    out: dict[str, Any] = {"resolution_s": resolution, "top": TOP, "metrics": {}}
    for metric in RESOURCE_METRICS:
        mine = sorted((s for s in stats if s.metric == metric), key=lambda s: (-s.p95, -s.peak, s.device))
        out["metrics"][metric] = {
            "series": len(mine),
            "top": [{"device": s.device, "labels": s.labels, "peak": _r(s.peak), "p95": _r(s.p95),
                     "buckets": s.buckets} for s in mine[:TOP]],
        }
    return out


def ups(engine: Engine, devices: Mapping[str, DeviceInfo], events: Sequence[StoredEvent],
        tickets: Sequence[Ticket], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per UPS: time on battery (5-minute buckets that read on-battery), traps, tickets, lowest charge."""
    on_batt = on_battery_buckets(engine, start, end)
    traps = Counter(e.device for e in events if e.kind == "trap")
    out = []
    for name, dev in devices.items():
        if dev.kind != "ups":
            continue
        charge = bucket_series(engine, name, "ups.battery_charge_pct", start, end, 3600)
        out.append({
            "device": name,
            "on_battery_s": on_batt.get(name, 0) * BUCKET_S,
            "traps": traps.get(name, 0),
            "tickets": [t.id for t in tickets if t.device == name and t.rule == UPS_RULE
                        and start <= t.opened_at < end],
            "battery_charge_min_pct": _r(min(c[1] for c in charge)) if charge else None,
        })
    return out


def config_changes(events: Iterable[StoredEvent]) -> dict[str, Any]:
    """Configuration changes and reboots: counts per device and the list (line counts, never the diff)."""
    changes = [e for e in events if e.kind == "config_changed"]
    reboots = [e for e in events if e.kind == "rebooted"]

    def lines(raw: object) -> int | None:
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int):
            return raw
        return len(raw) if isinstance(raw, list | tuple) else None

    return {
        "total": len(changes),
        "by_device": [{"device": d, "changes": n} for d, n in sorted(Counter(e.device for e in changes).items())],
        "items": [{"device": e.device, "at": _iso(e.ts), "added": lines(e.data.get("added")),
                   "removed": lines(e.data.get("removed"))} for e in changes],
        "reboots": [{"device": e.device, "at": _iso(e.ts)} for e in reboots],
    }


def maintenance(windows: Iterable[MaintenanceWindow], start: datetime, end: datetime) -> list[dict[str, Any]]:
    out = []
    for w in sorted(windows, key=lambda w: (w.start, sorted(w.devices))):
        part = w.interval.clip(start, end)
        if part is None:
            continue
        out.append({"devices": sorted(w.devices), "start": _iso(w.start), "end": _iso(w.end), "reason": w.reason,
                    "in_period_s": _r((part.end - part.start).total_seconds())})
    return out


def gaps(times: Iterable[DeviceTime], events: Iterable[StoredEvent], start: datetime,
         end: datetime) -> dict[str, Any]:
    """Time without data per device, the longest stretches, and the agents' own gap events."""
    stretches: list[tuple[str, Interval]] = []
    per_device = []
    for dt in times:
        unknown = dt.unknown(start, end)
        total = sum((iv.end - iv.start).total_seconds() for iv in unknown)
        if total > 0:
            per_device.append({"device": dt.device.name, "unknown_s": _r(total), "stretches": len(unknown)})
        stretches += [(dt.device.name, iv) for iv in unknown]
    stretches.sort(key=lambda x: (-(x[1].end - x[1].start).total_seconds(), x[0], x[1].start))
    return {
        "devices": sorted(per_device, key=lambda d: (-float(d["unknown_s"]), str(d["device"]))),
        "longest": [{"device": d, "from": _iso(iv.start), "to": _iso(iv.end),
                     "seconds": _r((iv.end - iv.start).total_seconds())} for d, iv in stretches[:GAPS_LISTED]],
        "agent_gap_events": sum(1 for e in events if e.kind == "agent_gap"),
    }


def findings(tickets: Sequence[Ticket], check_ids: Iterable[str], start: datetime,
             end: datetime) -> list[dict[str, Any]]:
    """Hidden dangers the inspection raised as tickets during the period, and whether they were resolved."""
    ids = set(check_ids)
    out = []
    for t in tickets:
        if t.rule not in ids or t.opened_at >= end:
            continue
        out.append({"ticket": t.id, "device": t.device, "check": t.rule, "level": t.level,
                    "opened_at": _iso(t.opened_at), "resolved": t.restored_at is not None,
                    "resolved_at": _iso(t.restored_at)})
    return out


def overlap_s(ivs: Sequence[Interval], start: datetime, end: datetime) -> float:
    return sum((iv.end - iv.start).total_seconds() for iv in clip_all(ivs, start, end))
