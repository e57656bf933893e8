"""Build the one JSON document of a report from what the collector stores (every format renders it).

``Builder(sources).build(kind, key, now=...)`` answers the document of a weekly, monthly, quarterly or
annual period (``key`` as ``2026-W48`` ...) or the fault analysis of one ticket (``key`` = its id).
Times are ISO 8601 in Asia/Shanghai, durations in seconds, availability in percent. A period that is
still running is reported as of ``now``; a past one as of its end, so it gives the same figures whenever
it is rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from weibao.collector.contract.calendar import WorkingCalendar, day_start, local
from weibao.collector.contract.maintenance import MaintenanceSchedule, MaintenanceWindow
from weibao.collector.contract.rules import ContractRules
from weibao.collector.reports import sections
from weibao.collector.reports import tickets as ticket_section
from weibao.collector.reports.availability import DeviceTime, Figures, classify, lookback
from weibao.collector.reports.periods import Kind, Period, parse_period
from weibao.collector.reports.source import (
    DeviceInfo,
    UpSamples,
    bucket_series,
    ms,
    read_devices,
    read_events,
    read_up,
)
from weibao.collector.reports.store import ReportStore
from weibao.collector.state.models import Device
from weibao.collector.storage import SampleStore
from weibao.collector.tickets.store import TicketStore
from weibao.collector.tickets.views import ticket_clocks
from weibao.core.inspection.rules import InspectionRules

SCHEMA_VERSION = 1
WORST_DEVICES = 10
FAULT_MARGIN = timedelta(hours=2)
FAULT_SPAN_MAX = timedelta(days=7)
FAULT_METRICS = (("up", "min"), ("icmp.loss_pct", "avg"), ("icmp.rtt_ms", "avg"))


class UnknownTicket(LookupError):
    """A fault report was asked for a ticket that does not exist."""


@dataclass(frozen=True)
class Sources:
    """Where a report reads from: the state store, the raw-sample store, tickets, rules and calendar."""

    engine: Engine
    samples: SampleStore
    tickets: TicketStore
    reports: ReportStore
    rules: ContractRules
    calendar: WorkingCalendar
    file_windows: tuple[MaintenanceWindow, ...] = ()
    danger_checks: tuple[str, ...] = ()
    inspection: InspectionRules | None = None  # the daily inspection's checks
    daily_at: time = time(8, 0)

    def schedule(self) -> MaintenanceSchedule:
        return MaintenanceSchedule([*self.file_windows, *(w.window for w in self.tickets.windows())])

    def site(self) -> str:
        with self.engine.connect() as conn:
            row = conn.execute(select(Device.site, func.count()).group_by(Device.site)
                               .order_by(func.count().desc()).limit(1)).first()
        return str(row[0]) if row is not None else ""


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _pct(f: Figures) -> tuple[float | None, float | None]:
    return f.availability_pct, f.availability_working_pct


class Builder:
    def __init__(self, sources: Sources) -> None:
        self.src = sources

    # -- entry ---------------------------------------------------------------------------------------------
    def build(self, kind: Kind | str, key: str, *, now: datetime) -> dict[str, Any]:
        k = Kind(kind)
        now = local(now)
        if k is Kind.FAULT:
            return self.fault(key, now=now)
        period = parse_period(k, key)
        return self.periodic(period, now=now)

    def _head(self, kind: str, key: str, start: datetime, end: datetime, as_of: datetime,
              now: datetime) -> dict[str, Any]:
        return {"kind": kind, "schema_version": SCHEMA_VERSION, "site": self.src.site(),
                "timezone": "Asia/Shanghai", "generated_at": now.isoformat(), "as_of": as_of.isoformat(),
                "period": {"key": key, "from": start.isoformat(), "to": end.isoformat(),
                           "seconds": (end - start).total_seconds(),
                           "working_seconds": self.src.calendar.working_seconds_between(start, end),
                           "complete": as_of >= end}}

    # -- periodic reports ----------------------------------------------------------------------------------
    def periodic(self, p: Period, *, now: datetime) -> dict[str, Any]:
        src = self.src
        as_of = min(p.end, now)
        doc = self._head(p.kind.value, p.key, p.start, p.end, as_of, now)
        devices = read_devices(src.engine)
        schedule = src.schedule()
        times = self._times(devices, schedule, p.start, as_of)
        tickets = ticket_section.load(src.tickets, p.start, p.end, as_of)
        events = read_events(src.engine, p.start, as_of)
        has_data = any(dt.samples for dt in times.values()) or bool(tickets) or bool(events)
        doc["has_data"] = has_data
        doc.update(self._availability(times, p.start, as_of))
        doc.update(ticket_section.section(tickets, p.start, p.end, as_of, calendar=src.calendar,
                                          limits=src.rules.clocks))
        doc["maintenance"] = sections.maintenance(schedule.windows, p.start, p.end)
        doc["config_changes"] = sections.config_changes(events)
        days = p.days() if p.kind in (Kind.WEEKLY, Kind.MONTHLY) else []
        if days:
            doc["daily"] = self._daily(times, tickets, days, as_of)
        if p.kind is Kind.WEEKLY:
            doc["findings"] = sections.findings(tickets, src.danger_checks, p.start, p.end)
            doc["notes"] = src.reports.notes("weekly", p.key)
        if p.kind is Kind.MONTHLY:
            doc["resources"] = sections.resources(src.engine, p.start, as_of, 3600)
            doc["ups"] = sections.ups(src.engine, devices, events, tickets, p.start, as_of)
            doc["gaps"] = sections.gaps(times.values(), events, p.start, as_of)
        if p.kind in (Kind.QUARTERLY, Kind.ANNUAL):
            doc["months"] = self._months(p, times, tickets, as_of)
            doc["resources"] = sections.resources(src.engine, p.start, as_of, 3600)
            doc["gaps"] = sections.gaps(times.values(), events, p.start, as_of)
        return doc

    def _times(self, devices: Mapping[str, DeviceInfo], schedule: MaintenanceSchedule, start: datetime,
               end: datetime) -> dict[str, DeviceTime]:
        settings = self.src.rules.evaluation
        if end <= start:
            return {name: DeviceTime(d) for name, d in devices.items()}
        back = lookback(settings, devices.values())
        ups = read_up(self.src.engine, self.src.samples, {n: d.spec for n, d in devices.items()}, settings,
                      start - back, end)
        out = {}
        for name, dev in devices.items():
            samples = ups.get(name) or UpSamples()
            if not dev.active and not samples.count_between(ms(start), ms(end)):
                continue  # retired and silent: not part of this period
            out[name] = classify(dev, samples, settings, schedule, start, end)
        return out

    def _figures(self, times: Iterable[DeviceTime], start: datetime, end: datetime) -> dict[str, Figures]:
        working = self.src.calendar.working_intervals(start, end) if end > start else []
        return {dt.device.name: dt.figures(start, end, working) if end > start else Figures() for dt in times}

    def _availability(self, times: Mapping[str, DeviceTime], start: datetime, end: datetime) -> dict[str, Any]:
        figs = self._figures(times.values(), start, end)
        devices = []
        by_cat: dict[str, Figures] = {}
        overall = Figures()
        for name, dt in sorted(times.items()):
            f = figs[name]
            devices.append({"device": name, "category": dt.device.category, "kind": dt.device.kind,
                            "samples": dt.samples, **f.as_json()})
            by_cat.setdefault(dt.device.category, Figures()).add(f)
            overall.add(f)
        categories = [{"category": c, "devices": sum(1 for d in times.values() if d.device.category == c),
                       **f.as_json()} for c, f in sorted(by_cat.items())]
        worst = sorted((d for d in devices if d["down_s"]),
                       key=lambda d: (d["availability_pct"] if d["availability_pct"] is not None else 101.0,
                                      -float(d["down_s"] or 0), str(d["device"])))
        return {"devices": devices, "categories": categories, "overall": overall.as_json(),
                "worst_devices": [{"device": d["device"], "category": d["category"], "down_s": d["down_s"],
                                   "down_working_s": d["down_working_s"], "availability_pct": d["availability_pct"]}
                                  for d in worst[:WORST_DEVICES]],
                "downtime": {"down_s": overall.as_json()["down_s"], "working_s": overall.as_json()["down_working_s"],
                             "non_working_s": overall.as_json()["down_non_working_s"]}}

    def _daily(self, times: Mapping[str, DeviceTime], tickets: Sequence[Any], days: Sequence[Any],
               as_of: datetime) -> list[dict[str, Any]]:
        bounds = [day_start(d) for d in days] + [day_start(days[-1]) + timedelta(days=1)]
        opened = ticket_section.per_day(tickets, bounds)
        out = []
        for i, d in enumerate(days):
            a, b = bounds[i], min(bounds[i + 1], as_of)
            total = Figures()
            if b > a:
                for f in self._figures(times.values(), a, b).values():
                    total.add(f)
            out.append({"date": d.isoformat(), "availability_pct": None if total.availability_pct is None
                        else round(total.availability_pct, 6), "down_s": round(total.down_s, 3),
                        "tickets_opened": opened[i]})
        return out

    def _months(self, p: Period, times: Mapping[str, DeviceTime], tickets: Sequence[Any],
                as_of: datetime) -> list[dict[str, Any]]:
        out = []
        for m in p.months():
            end = min(m.end, as_of)
            total = Figures()
            if end > m.start:
                for f in self._figures(times.values(), m.start, end).values():
                    total.add(f)
            part = ticket_section.section([t for t in tickets if t.opened_at < m.end], m.start, m.end,
                                          min(m.end, as_of), calendar=self.src.calendar,
                                          limits=self.src.rules.clocks)
            out.append({"month": m.key, "from": m.start.isoformat(), "to": m.end.isoformat(),
                        **{k: v for k, v in total.as_json().items()},
                        "tickets_opened": part["tickets"]["opened"],
                        "opened_by_level": part["tickets"]["opened_by_level"],
                        "clocks": {name: {k: c[k] for k in ("met", "breached", "pending")}
                                   for name, c in part["clocks"].items()}})
        return out

    # -- fault analysis ------------------------------------------------------------------------------------
    def fault(self, ticket_id: str, *, now: datetime) -> dict[str, Any]:
        src = self.src
        ticket = src.tickets.get(ticket_id)
        if ticket is None:
            raise UnknownTicket(ticket_id)
        end = ticket.restored_at or now
        start = ticket.opened_at
        doc = self._head("fault", ticket.id, start, max(end, start), now, now)
        clocks = list(ticket_clocks(ticket, calendar=src.calendar, limits=src.rules.clocks, now=now))
        doc["has_data"] = True
        doc["ticket"] = ticket_section.item(ticket, clocks)
        doc["timeline"] = ticket_section.timeline(ticket)
        doc["affected"] = [ticket.device, *ticket.affected]
        w_start = start - FAULT_MARGIN
        w_end = min(end + FAULT_MARGIN, start + FAULT_SPAN_MAX, now)
        doc["samples"] = {"from": w_start.isoformat(), "to": w_end.isoformat(), "resolution_s": 300, "series": [
            {"device": dev, "metric": metric, "value": agg,
             "points": [[t.isoformat(), round({"min": lo, "avg": avg}[agg], 3)]
                        for t, lo, avg, _ in bucket_series(src.engine, dev, metric, w_start, w_end)]}
            for dev in doc["affected"][:5] for metric, agg in FAULT_METRICS]}
        doc["samples"]["series"] = [s for s in doc["samples"]["series"] if s["points"]]
        notes = src.reports.notes("fault", ticket.id)
        doc["analysis"] = notes
        doc["draft"] = not any(notes.get(f) for f in ("cause", "measures", "prevention"))
        return doc
