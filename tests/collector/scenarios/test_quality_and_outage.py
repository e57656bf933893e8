"""Loss or latency around an outage of the same backbone node, through the real collector: one fault, whose
level counts the "loss >= 30 % or latency >= 800 ms" condition over all of it (a node that is down loses
every probe), and the same tickets whether the history comes in one backlog batch or as lived.

Worked by hand from rules/contract.yaml (backbone: loss-or-latency sustained >= 1 h is level 2, >= 2 h level
1; unreachable >= 1 h level 2). One probe a minute; Tuesday 24 Nov 2026. The down node's probes all fail, so
the loss-or-latency episode runs through the outage; the reachability ticket carries the fault while the
node is down (a loss ticket open then is folded into it), and what is still bad once the node is back is a
ticket of its own from that moment.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.collector.scenarios.conftest import AgentFactory
from tests.collector.scenarios.replay import MINUTE, Point, at, batches, device_entry, drained, tickets_of, when

pytestmark = pytest.mark.timeout(300)

DAY = "2026-11-24"


def timeline(device: str, spans: list[tuple[str, str, str]]) -> list[Point]:
    """One point a minute from 08:40 to 11:30; ``spans`` (from, to, what) with what in down / loss / latency."""
    points, t = [], at(f"{DAY} 08:40")
    while t < at(f"{DAY} 11:30"):
        what = next((k for a, b, k in spans if at(f"{DAY} {a}") <= t < at(f"{DAY} {b}")), None)
        if what == "down":
            points.append(Point(t, device, up=0.0, loss=100.0))
        elif what == "loss":
            points.append(Point(t, device, up=1.0, loss=50.0, rtt=5.0))
        elif what == "latency":
            points.append(Point(t, device, up=1.0, loss=0.0, rtt=900.0))
        else:
            points.append(Point(t, device, up=1.0, loss=0.0, rtt=5.0))
        t += MINUTE
    return points


def hm(value: str | None) -> str | None:
    t: datetime | None = when(value)
    return t.strftime("%H:%M") if t is not None else None


def shape(engineer: httpx.Client, device: str) -> list[tuple[Any, ...]]:
    """(rule, level, opened, restored, state, [(level, promoted at)]) of the device's tickets, oldest first."""
    drained(engineer)
    time.sleep(2.5)  # two sweeps (1 s apart in these tests)
    drained(engineer)
    out = []
    for t in sorted(tickets_of(engineer, device), key=lambda t: (t["opened_at"], t["rule"])):
        promoted = [(e["to_level"], hm(e["at"])) for e in t["events"] if e["kind"] == "promote"]
        out.append((t["rule"], t["level"], hm(t["opened_at"]), hm(t["restored_at"]), t["state"], promoted))
    return out


CASES: dict[str, tuple[list[tuple[str, str, str]], list[tuple[Any, ...]]]] = {
    # latency 09:00-10:30 reaches 1 h at 10:00 (level 2); down 10:30-10:45 is the same fault, on at level 2
    "latency, then down": (
        [("09:00", "10:30", "latency"), ("10:30", "10:45", "down")],
        [("loss_or_latency", 2, "09:00", "10:30", "closed", [(2, "10:00")]),
         ("down", 2, "10:30", "10:45", "restored", [(2, "10:30")])]),
    # loss 09:00-09:40, down 09:40-10:30: the condition holds 09:00-10:30, 1 h at 10:00, while the node is down
    "loss, then down": (
        [("09:00", "09:40", "loss"), ("09:40", "10:30", "down")],
        [("loss_or_latency", 3, "09:00", "09:40", "closed", []),
         ("down", 2, "09:40", "10:30", "restored", [(2, "10:00")])]),
    # down 09:00-09:40 (40 min: level 3), loss on until 10:30: its own ticket from 09:40, level 2 at 10:00
    "down, then loss": (
        [("09:00", "09:40", "down"), ("09:40", "10:30", "loss")],
        [("down", 3, "09:00", "09:40", "restored", []),
         ("loss_or_latency", 2, "09:40", "10:30", "restored", [(2, "10:00")])]),
    # loss, down 09:30-09:50 (the condition 50 min by its end: level 3), loss again until 10:20: still bad once
    # the node is back, a ticket of its own from 09:50, level 2 at 10:00
    "loss, down, loss": (
        [("09:00", "09:30", "loss"), ("09:30", "09:50", "down"), ("09:50", "10:20", "loss")],
        [("loss_or_latency", 3, "09:00", "09:30", "closed", []),
         ("down", 3, "09:30", "09:50", "restored", []),
         ("loss_or_latency", 2, "09:50", "10:20", "restored", [(2, "10:00")])]),
    # down 09:00-09:20, loss until 10:05, down again 10:05-10:15, loss until 10:45: the condition holds
    # 09:00-10:45 throughout (1 h at 10:00, never 2 h). Each stretch the node is up and still bad is a ticket
    # of its own from the end of the outage before it, folded into the next outage's ticket at its start:
    # the first stretch reaches level 2 at 10:00 and is folded at 10:05; the second outage's ticket is level
    # 2 from its opening, and so is the last stretch, from 10:15
    "down, loss, down, loss": (
        [("09:00", "09:20", "down"), ("09:20", "10:05", "loss"), ("10:05", "10:15", "down"),
         ("10:15", "10:45", "loss")],
        [("down", 3, "09:00", "09:20", "restored", []),
         ("loss_or_latency", 2, "09:20", "10:05", "closed", [(2, "10:00")]),
         ("down", 2, "10:05", "10:15", "restored", [(2, "10:05")]),
         ("loss_or_latency", 2, "10:15", "10:45", "restored", [(2, "10:15")])]),
}


def send(http: httpx.Client, agent: str, points: list[Point]) -> None:
    for body in batches(agent, points):
        r = http.post("/api/v1/ingest", json=body)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("mode", ["one backlog", "as lived"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_or_latency_and_an_outage_are_one_fault_in_any_arrival_order(
        agent: AgentFactory, engineer: httpx.Client, case: str, mode: str) -> None:
    spans, expected = CASES[case]
    name = f"qo{sorted(CASES).index(case)}{'bl'[mode == 'as lived']}"
    device = f"{name}-bb"
    http = agent(name, [device_entry(device, "backbone", kind="router")])
    points = timeline(device, spans)
    if mode == "one backlog":
        send(http, name, points)
    else:  # a few minutes at a time, the engine sweeping in between
        for i in range(0, len(points), 10):
            send(http, name, points[i:i + 10])
            drained(engineer)
    assert shape(engineer, device) == expected
