"""The daily inspection (巡检) made by the collector from what it stores, with the checks and the look of
``weibao inspect`` (the core's evaluation and report).

The round of day D is taken at the configured time (08:00 contract time by default), or now if that is
still to come: per registered device, the newest stored value of each series (the ``last`` of its
newest 5-minute rollup: reachability metrics at most 1 hour old, the rest at most 26 hours, so the
nightly SSH readings count), and the events of the 24 hours before. The "previous inspection" the
increase, transition and reboot checks compare with is the same reading one day earlier. The collector
holds no credential (registrations refuse them); device text is still masked by the configuration
keywords.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import Engine, select

from weibao.collector.contract.calendar import local
from weibao.collector.reports.source import from_ms, ms, read_events
from weibao.collector.state.models import Device, Rollup, Series
from weibao.core.inspection.evaluate import inspect
from weibao.core.inspection.model import Inspection
from weibao.core.inspection.report import render_html
from weibao.core.inspection.rules import UPTIME_METRIC, InspectionRules
from weibao.core.inspection.view import label_key
from weibao.core.inventory import Category, Kind
from weibao.core.model import Event, EventKind, PollResult, Protocol, Sample
from weibao.core.timeutil import SHANGHAI

FRESH = timedelta(hours=26)
REACH_FRESH = timedelta(hours=1)
_REACH = frozenset({"up", "icmp.loss_pct", "icmp.rtt_ms", "icmp.rtt_min_ms", "icmp.rtt_max_ms", "icmp.jitter_ms",
                    "snmp.up", "ssh.up"})
_SSH = ("ssh.", "sys.load", "systemd.")


@dataclass(frozen=True, slots=True)
class Asset:
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    location: str | None = None
    warranty_end: date | None = None


@dataclass(frozen=True, slots=True)
class RegisteredDevice:
    """A device as its agent registered it (no credential), in the shape the inspection reads."""

    name: str
    address: str
    kind: Kind
    category: Category
    asset: Asset


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def registered_devices(engine: Engine) -> list[RegisteredDevice]:
    with engine.connect() as conn:
        rows = conn.execute(select(Device.name, Device.kind, Device.category, Device.asset, Device.spec)
                            .where(Device.active.is_(True)).order_by(Device.name)).all()
    out = []
    for r in rows:
        try:
            asset, spec = json.loads(r.asset or "{}"), json.loads(r.spec or "{}")
        except ValueError:
            asset, spec = {}, {}
        end = asset.get("warranty_end")
        try:
            warranty = date.fromisoformat(end) if isinstance(end, str) else None
        except ValueError:
            warranty = None
        out.append(RegisteredDevice(r.name, str(spec.get("address", "")), Kind(r.kind), Category(r.category),
                                    Asset(_text(asset.get("vendor")), _text(asset.get("model")),
                                          _text(asset.get("serial")), _text(asset.get("location")), warranty)))
    return out


def _protocol(metric: str) -> Protocol:
    if metric.startswith("icmp.") or metric == "up":
        return Protocol.ICMP
    if metric.startswith(_SSH):
        return Protocol.SSH
    return Protocol.SNMP


def newest(engine: Engine, at: datetime) -> dict[tuple[str, str, str], Sample]:
    """The newest stored value of every series before ``at`` (reachability metrics within an hour)."""
    q = (select(Series.device, Series.metric, Series.labels, Rollup.last, Rollup.last_ts_ms)
         .join(Rollup, Rollup.series_id == Series.id)
         .where(Rollup.resolution == 300, Rollup.bucket_ms >= ms(at - FRESH) - 300_000, Rollup.bucket_ms < ms(at)))
    out: dict[tuple[str, str, str], Sample] = {}
    reach_from = ms(at - REACH_FRESH)
    with engine.connect() as conn:
        for r in conn.execute(q):
            if r.last_ts_ms > ms(at) or (r.metric in _REACH and r.last_ts_ms < reach_from):
                continue
            labels = json.loads(r.labels)
            key = (r.device, r.metric, label_key(labels) if labels else "")
            old = out.get(key)
            if old is None or ms(old.ts) < r.last_ts_ms:
                out[key] = Sample(r.device, r.metric, float(r.last), from_ms(r.last_ts_ms), labels)
    return out


def round_at(engine: Engine, devices: Iterable[str], at: datetime) -> list[PollResult]:
    """The stored round: newest samples per device and protocol, and the events of the day before."""
    names = set(devices)
    results: dict[tuple[str, Protocol], PollResult] = {}
    latest = newest(engine, at)
    # a device whose agent says it is down now answered nothing: its older readings describe the past
    down = {d for (d, metric, _), s in latest.items() if metric == "up" and s.value < 1}
    for (device, metric, _), s in latest.items():
        if device in names and (device not in down or metric in _REACH):
            p = _protocol(metric)
            results.setdefault((device, p), PollResult(device, p)).samples.append(s)
    # events ride with the ICMP result: whether ICMP answered is read from its loss alone, so they never
    # make a silent device look as if it answered
    for e in read_events(engine, at - timedelta(days=1), at, ("config_changed", "rebooted", "trap")):
        if e.device in names:
            results.setdefault((e.device, Protocol.ICMP), PollResult(e.device, Protocol.ICMP)).events.append(
                Event(e.device, EventKind(e.kind), e.ts, e.data))
    return list(results.values())


class StoredHistory:
    """The "previous inspection": the same stored reading one day before the round."""

    def __init__(self, engine: Engine, at: datetime) -> None:
        self._values: dict[tuple[str, str, str], Sample] = newest(engine, at - timedelta(days=1))

    def previous(self, device: str, metric: str, key: str) -> float | None:
        s = self._values.get((device, metric, key))
        return None if s is None else s.value

    def uptime(self, device: str) -> tuple[float, datetime] | None:
        s = self._values.get((device, UPTIME_METRIC, ""))
        return None if s is None else (s.value, s.ts)


def round_time(day: date, daily_at: time, now: datetime) -> datetime:
    """When the round of ``day`` is taken: at ``daily_at`` that day, or now if that is still to come."""
    return min(datetime.combine(day, daily_at, SHANGHAI), local(now))


def build(engine: Engine, rules: InspectionRules, day: date, daily_at: time, now: datetime) -> Inspection:
    at = round_time(day, daily_at, now)
    devices = registered_devices(engine)
    results = round_at(engine, [d.name for d in devices], at)
    return inspect(devices, results, rules, StoredHistory(engine, at), now=at)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def inspection_json(insp: Inspection, *, day: date) -> dict[str, Any]:
    """The inspection as the report's JSON document (the core's model, plainly)."""
    body = _plain(dataclasses.asdict(insp))
    return {"kind": "daily", "period": {"key": day.isoformat(), "at": insp.at.isoformat()},
            "timezone": "Asia/Shanghai", **body}


def render(insp: Inspection, fmt: str, lang: str, site: str, day: date) -> bytes:
    if fmt == "json":
        return json.dumps(inspection_json(insp, day=day), ensure_ascii=False, indent=1).encode()
    html = render_html(insp, lang="en" if lang == "en" else "zh", site=site)
    if fmt == "html":
        return html.encode()
    if fmt == "pdf":
        from weibao.collector.reports.pdf import html_to_pdf

        return html_to_pdf(html)
    raise ValueError(f"a daily inspection is json, html or pdf, not {fmt}")


def per_device(insp: Inspection) -> dict[str, list[str]]:
    """Finding rules per device (for a glance in logs and tests)."""
    out: dict[str, list[str]] = defaultdict(list)
    for f in insp.findings:
        out[f.device].append(f.rule)
    return dict(out)
