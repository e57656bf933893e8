"""Timelines of samples replayed through ``POST /api/v1/ingest``, and the tickets they led to.

A timeline is a list of ``Point`` (one moment of one device: ``up``, ``icmp.loss_pct``, ``icmp.rtt_ms``,
each optional) with explicit Asia/Shanghai timestamps, one per probe interval (a minute). It is sent in
timestamp order as batches, the way an agent ships its spool, so that the collector evaluates it in event
time exactly as if it had been lived.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

CST = ZoneInfo("Asia/Shanghai")
MINUTE = timedelta(minutes=1)
BATCH_SAMPLES = 5000  # the agent's default shipment size (weibao agent --batch-size)


def at(text: str) -> datetime:
    """``"2026-11-17 09:00"`` as an Asia/Shanghai time."""
    return datetime.fromisoformat(text).replace(tzinfo=CST)


@dataclass(frozen=True, slots=True)
class Point:
    ts: datetime
    device: str
    up: float | None = None
    loss: float | None = None
    rtt: float | None = None

    def samples(self) -> list[dict[str, Any]]:
        out = []
        for metric, value in (("up", self.up), ("icmp.loss_pct", self.loss), ("icmp.rtt_ms", self.rtt)):
            if value is not None:
                out.append({"device": self.device, "metric": metric, "value": float(value),
                            "ts": self.ts.isoformat(), "labels": {}})
        return out


def minutes(start: datetime, end: datetime, step: timedelta = MINUTE) -> Iterator[datetime]:
    """start, start + step, ... strictly before end."""
    t = start
    while t < end:
        yield t
        t += step


def reachability(device: str, start: datetime, end: datetime, outages: Iterable[tuple[datetime, datetime]],
                 *, rtt: float = 1.0, step: timedelta = MINUTE) -> list[Point]:
    """One sample a ``step`` in [start, end): up = 0 inside each [a, b) outage, else up = 1 with a healthy
    ICMP burst (no loss, ``rtt`` ms)."""
    spans = list(outages)
    out = []
    for t in minutes(start, end, step):
        down = any(a <= t < b for a, b in spans)
        out.append(Point(t, device, up=0.0, loss=100.0) if down else Point(t, device, up=1.0, loss=0.0, rtt=rtt))
    return out


def link_quality(device: str, start: datetime, end: datetime, bad: tuple[datetime, datetime], *,
                 loss: float = 0.0, rtt: float = 1.0, good_loss: float = 0.0,
                 good_rtt: float = 1.0) -> list[Point]:
    """One sample a minute in [start, end) of a reachable device (up = 1) whose ICMP bursts show ``loss``
    and ``rtt`` inside [bad) and healthy values outside."""
    a, b = bad
    return [Point(t, device, up=1.0, loss=loss, rtt=rtt) if a <= t < b
            else Point(t, device, up=1.0, loss=good_loss, rtt=good_rtt) for t in minutes(start, end)]


def batches(agent: str, points: Iterable[Point]) -> Iterator[dict[str, Any]]:
    """Ingest bodies, in timestamp order (ties in the given order)."""
    ordered = sorted(points, key=lambda p: p.ts)
    buf: list[dict[str, Any]] = []
    for p in ordered:
        buf.extend(p.samples())
        if len(buf) >= BATCH_SAMPLES:
            yield {"batch_id": str(uuid.uuid4()), "agent": agent, "samples": buf, "events": []}
            buf = []
    if buf:
        yield {"batch_id": str(uuid.uuid4()), "agent": agent, "samples": buf, "events": []}


def replay(http: httpx.Client, agent: str, points: Iterable[Point]) -> int:
    """Send ``points`` as batches; every batch must be accepted. Returns the number of samples."""
    n = 0
    for body in batches(agent, points):
        r = http.post("/api/v1/ingest", json=body)
        assert r.status_code == 200, r.text
        n += len(body["samples"])
    return n


def device_entry(name: str, category: str, *, kind: str = "switch", depends_on: str | None = None,
                 probe_s: float = 60.0) -> dict[str, Any]:
    """A registered device as an agent describes it (no credentials), probed once a ``probe_s``: by SNMP
    (a device without ICMP or SNMP settings is taken as probed at the rules' default interval, 60 s)."""
    out: dict[str, Any] = {"name": name, "address": "127.0.0.1", "kind": kind, "category": category,
                           "tags": ["scenario"], "asset": {},
                           "schedule": {"icmp_s": probe_s, "snmp_s": probe_s, "ssh_at": "02:00:00",
                                        "timeout_s": 30.0}}
    if depends_on is not None:
        out["depends_on"] = depends_on
    if probe_s != 60.0:
        out["snmp"] = {"port": 161, "timeout_s": 1.0, "retries": 0, "max_repetitions": 25}
    return out


def register(http: httpx.Client, agent: str, devices: list[dict[str, Any]]) -> None:
    r = http.put("/api/v1/inventory", json={"site": "scenario-lab", "agent": agent, "devices": devices})
    assert r.status_code == 200, r.text


# --- reading tickets back -------------------------------------------------------------------------


def is_gap(ticket: dict[str, Any]) -> bool:
    """A monitoring-gap ticket (no data), as opposed to a fault of the device."""
    return "gap" in str(ticket.get("rule", "")).lower()


def all_tickets(http: httpx.Client, device: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, str | int] = {"limit": 10000}
    if device is not None:
        params["device"] = device
    r = http.get("/api/v1/tickets", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    found = body["tickets"] if isinstance(body, dict) else body
    assert isinstance(found, list), body
    return found


def tickets_of(http: httpx.Client, device: str, *, gaps: bool = False) -> list[dict[str, Any]]:
    """The device's fault tickets (monitoring-gap tickets only when ``gaps``), oldest first, in full."""
    out = []
    for t in all_tickets(http, device):
        if t.get("device") == device and is_gap(t) == gaps:
            r = http.get(f"/api/v1/tickets/{t['id']}")
            assert r.status_code == 200, r.text
            out.append(r.json())
    return sorted(out, key=lambda t: (t["opened_at"], t["id"]))


def wait_for(what: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.25) -> Any:
    """The first truthy value of ``what()`` within ``timeout`` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    value = what()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = what()
    return value


def gap_tickets(http: httpx.Client, device: str) -> list[dict[str, Any]]:
    """Monitoring-gap tickets that cover ``device``: its own, or its agent's listing it as affected."""
    out = []
    for t in all_tickets(http):
        if is_gap(t) and (t.get("device") == device or device in t.get("affected", [])):
            r = http.get(f"/api/v1/tickets/{t['id']}")
            assert r.status_code == 200, r.text
            out.append(r.json())
    return sorted(out, key=lambda t: (t["opened_at"], t["id"]))


def drained(http: httpx.Client, *, timeout: float = 30.0) -> None:
    """Until the engine has no batch waiting and its count of processed batches holds still (GET
    /api/v1/contract); a replay's tickets are then final but for what the periodic sweep adds."""
    def still() -> bool:
        a = http.get("/api/v1/contract").json()
        time.sleep(0.3)
        b = http.get("/api/v1/contract").json()
        idle = a.get("queued") == 0 == b.get("queued")
        return bool(idle and a.get("batches_processed") == b.get("batches_processed"))

    wait_for(still, timeout=timeout, interval=0.1)


def settled(http: httpx.Client, device: str, count: int, *, gaps: bool = False,
            timeout: float = 20.0) -> list[dict[str, Any]]:
    """The device's tickets once the engine is drained, ``count`` of them exist and none is still open or
    accepted (the replay ended with the device healthy), or what there is after ``timeout``; assertions
    judge the result."""
    drained(http, timeout=timeout)

    def ready() -> list[dict[str, Any]] | None:
        found = tickets_of(http, device, gaps=gaps)
        if len(found) >= count and all(t["state"] in ("restored", "closed") for t in found):
            return found
        return None

    got = wait_for(ready, timeout=timeout)
    return got if got else tickets_of(http, device, gaps=gaps)


def when(value: str | None) -> datetime | None:
    """An API time, in Asia/Shanghai (for comparison with ``at(...)``)."""
    return datetime.fromisoformat(value).astimezone(CST) if value is not None else None


def clock(ticket: dict[str, Any], name: str) -> tuple[datetime | None, datetime | None, bool]:
    """(deadline, met_at, breached) of one of the ticket's clocks."""
    c = ticket["clocks"][name]
    return when(c["deadline"]), when(c["met_at"]), bool(c["breached"])


def events(ticket: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in ticket.get("events", []) if e.get("kind") == kind]
