"""The same history gives the same tickets in any arrival order (a site with two agents, one of them shipping
a backlog), worked out by hand; and a property-based test over generated sites.

Conventions as in test_contract_scenarios.py: one sample a minute (Asia/Shanghai), an outage [a, b) has
up = 0 from a to b - 1 min and up = 1 from b on; Tuesday 17 Nov 2026 is a working day (08:30-17:30).
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.collector.scenarios.conftest import AgentFactory
from tests.collector.scenarios.replay import (
    MINUTE,
    Point,
    all_tickets,
    at,
    device_entry,
    drained,
    events,
    reachability,
    when,
)

pytestmark = pytest.mark.timeout(600)


def ship(http: httpx.Client, agent: str, points: Iterable[Point], per_batch: int = 30) -> None:
    """``points`` in the order given, ``per_batch`` at a time: what one agent's spool sends."""
    batch: list[dict[str, Any]] = []
    for p in points:
        batch += p.samples()
        if len(batch) >= per_batch:
            r = http.post("/api/v1/ingest", json={"batch_id": str(uuid.uuid4()), "agent": agent,
                                                  "samples": batch, "events": []})
            assert r.status_code == 200, r.text
            batch = []
    if batch:
        r = http.post("/api/v1/ingest", json={"batch_id": str(uuid.uuid4()), "agent": agent, "samples": batch,
                                              "events": []})
        assert r.status_code == 200, r.text


def settle(engineer: httpx.Client) -> None:
    drained(engineer)
    status = engineer.get("/api/v1/contract").json()
    assert status["held"] == 0, status


def tickets_for(engineer: httpx.Client, devices: set[str]) -> list[dict[str, Any]]:
    """Full tickets whose device or affected list names one of ``devices`` (monitoring gaps aside: they
    follow the wall clock's silence, not the history)."""
    out = []
    for t in all_tickets(engineer):
        if t["rule"] == "agent_gap":
            continue
        if t["device"] in devices or devices & set(t["affected"]):
            out.append(engineer.get(f"/api/v1/tickets/{t['id']}").json())
    return out


def canonical(tickets: list[dict[str, Any]], rename: dict[str, str]) -> list[tuple[Any, ...]]:
    """What must be equal whatever the arrival order: everything but ids, event order and recording times."""
    def name(d: str) -> str:
        return rename.get(d, d)

    out = []
    for t in tickets:
        evs = sorted((e["kind"], e["at"], e["to_level"], tuple(sorted(name(d) for d in e["devices"])))
                     for e in t["events"])
        clocks = tuple(sorted((k, c["deadline"], c["met_at"], c["breached"]) for k, c in t["clocks"].items()))
        out.append((name(t["device"]), t["rule"], t["level"], t["state"], t["opened_at"], t["restored_at"],
                    t["closed_at"], tuple(sorted(name(d) for d in t["affected"])), tuple(evs), clocks))
    return sorted(out)


# --- the two situations of the issue, by hand --------------------------------------------------------

CORE_DOWN = (at("2026-11-17 09:00"), at("2026-11-17 09:40"))


def site(prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Point], list[Point]]:
    core = f"{prefix}-core"
    acc = [f"{prefix}-acc-{i}" for i in range(1, 6)]
    start, end = at("2026-11-17 08:40"), at("2026-11-17 10:40")
    core_points = reachability(core, start, end, [CORE_DOWN])
    acc_points: list[Point] = []
    for i, name in enumerate(acc, start=1):
        # acc-1..3 down exactly while the core is; acc-4 stays down 30 min longer; acc-5 never goes down
        outages = {4: [(CORE_DOWN[0], at("2026-11-17 10:10"))], 5: []}.get(i, [CORE_DOWN])
        acc_points += reachability(name, start, end, outages)
    core_dev = [device_entry(core, "backbone")]
    acc_dev = [device_entry(a, "business", depends_on=core) for a in acc]
    return core_dev, acc_dev, core_points, acc_points


@pytest.mark.parametrize("order", ["core agent first", "access agent first", "as lived"])
def test_a_backlog_behind_a_restored_upstream_opens_no_ticket_of_its_own(
        agent: AgentFactory, engineer: httpx.Client, order: str) -> None:
    prefix = f"ao{['core agent first', 'access agent first', 'as lived'].index(order)}"
    core_dev, acc_dev, core_points, acc_points = site(prefix)
    core_agent, access_agent = f"{prefix}-a", f"{prefix}-b"
    http_a, http_b = agent(core_agent, core_dev), agent(access_agent, acc_dev)
    ship(http_a, core_agent, core_points[:1])
    ship(http_b, access_agent, [p for p in acc_points if p.ts == core_points[0].ts])
    rest_a, rest_b = core_points[1:], [p for p in acc_points if p.ts > core_points[0].ts]
    if order == "core agent first":
        ship(http_a, core_agent, rest_a)
        ship(http_b, access_agent, rest_b)
    elif order == "access agent first":
        ship(http_b, access_agent, rest_b)
        ship(http_a, core_agent, rest_a)
    else:  # a minute at a time, both agents
        for _ts, group in itertools.groupby(sorted(rest_a + rest_b, key=lambda p: p.ts), key=lambda p: p.ts):
            points = list(group)
            ship(http_a, core_agent, [p for p in points if p.device.endswith("core")])
            ship(http_b, access_agent, [p for p in points if not p.device.endswith("core")])
    settle(engineer)
    tickets = tickets_for(engineer, {d["name"] for d in core_dev + acc_dev})
    by_device = {t["device"]: t for t in tickets}
    # one ticket for the core (09:00-09:40: backbone down single 40 min < 1 h: level 3), one for acc-4 (its
    # own from 09:40, when the core was back, to 10:10: business, 30 min in working hours < 1 h: level 3);
    # none for acc-1..3 (inside the core's outage) nor acc-5 (never down)
    assert sorted(by_device) == [f"{prefix}-acc-4", f"{prefix}-core"], [t["device"] for t in tickets]
    core = by_device[f"{prefix}-core"]
    assert (core["rule"], core["level"], core["state"]) == ("down", 3, "restored")
    assert (when(core["opened_at"]), when(core["restored_at"])) == CORE_DOWN
    assert sorted(core["affected"]) == [f"{prefix}-acc-{i}" for i in range(1, 5)]
    # each added with the time it went down, whenever its samples came
    attached = sorted((d, when(e["at"])) for e in events(core, "attach_affected") for d in e["devices"])
    assert attached == [(f"{prefix}-acc-{i}", CORE_DOWN[0]) for i in range(1, 5)]
    own = by_device[f"{prefix}-acc-4"]
    assert (own["rule"], own["level"], own["state"]) == ("down", 3, "restored")
    assert (when(own["opened_at"]), when(own["restored_at"])) == (CORE_DOWN[1], at("2026-11-17 10:10"))
    # its response clock runs from 09:40: level 3, 20 min
    assert when(own["clocks"]["response"]["deadline"]) == at("2026-11-17 10:00")


# --- any site, any order -----------------------------------------------------------------------------

START, END = at("2026-11-17 08:10"), at("2026-11-17 10:50")
SPAN_MIN = int((END - START) / MINUTE) - 20  # the last 20 minutes of every history are healthy


@st.composite
def outages(draw: st.DrawFn, n_max: int = 2) -> list[tuple[int, int]]:
    spans = draw(st.lists(st.tuples(st.integers(0, SPAN_MIN - 1), st.integers(1, 70)), max_size=n_max))
    return [(a, min(a + d, SPAN_MIN)) for a, d in spans]


@st.composite
def sites(draw: st.DrawFn) -> dict[str, Any]:
    n_deps = draw(st.integers(1, 3))
    root_out = draw(outages())
    deps = []
    for i in range(n_deps):
        # a dependent's outages: its own, or its upstream's stretched or cut by a few minutes
        own = draw(outages(1))
        shadow = [(max(0, a + draw(st.integers(-3, 3))), min(SPAN_MIN, b + draw(st.integers(-10, 30))))
                  for a, b in root_out if draw(st.booleans())]
        chained = i > 0 and draw(st.booleans())
        deps.append({"outages": [s for s in own + shadow if s[1] > s[0]], "chained": chained,
                     "category": draw(st.sampled_from(["business", "mis", "processing"]))})
    quality = draw(st.lists(st.tuples(st.integers(0, SPAN_MIN - 1), st.integers(1, 70),
                                      st.sampled_from(["loss", "latency"])), max_size=2))
    window = draw(st.one_of(st.none(), st.tuples(st.integers(0, SPAN_MIN - 30), st.integers(10, 60))))
    mixed_agents = draw(st.booleans())
    return {"root": root_out, "deps": deps, "quality": quality, "window": window, "mixed": mixed_agents}


def build(spec: dict[str, Any], prefix: str) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[Point]]]:
    """Devices by agent, and each device's points in time order."""
    def t(m: int) -> datetime:
        return START + m * MINUTE

    root = f"{prefix}-r"
    bad_quality = [(t(a), t(min(a + d, SPAN_MIN)), kind) for a, d, kind in spec["quality"]]
    root_down = [(t(a), t(b)) for a, b in spec["root"]]
    points: dict[str, list[Point]] = {root: []}
    m = START
    while m < END:
        down = any(a <= m < b for a, b in root_down)
        loss = 40.0 if any(a <= m < b and k == "loss" for a, b, k in bad_quality) else 0.0
        rtt = 900.0 if any(a <= m < b and k == "latency" for a, b, k in bad_quality) else 2.0
        points[root].append(Point(m, root, up=0.0, loss=100.0) if down else Point(m, root, up=1.0, loss=loss, rtt=rtt))
        m += MINUTE
    devices = {"a": [device_entry(root, "backbone")], "b": []}
    for i, dep in enumerate(spec["deps"]):
        name = f"{prefix}-d{i}"
        upstream = f"{prefix}-d{i - 1}" if dep["chained"] else root
        points[name] = reachability(name, START, END, [(t(a), t(b)) for a, b in dep["outages"]])
        agent = "a" if spec["mixed"] and i % 2 else "b"
        devices[agent].append(device_entry(name, dep["category"], depends_on=upstream))
    return devices, points


def shuffled(streams: dict[str, list[Point]], agents: dict[str, str], rnd: Any) -> list[tuple[str, list[Point]]]:
    """Per-device order kept, devices interleaved at random, each agent's points sent in runs."""
    cursors = {d: 0 for d in streams}
    sends: list[tuple[str, list[Point]]] = []
    while any(cursors[d] < len(streams[d]) for d in streams):
        device = rnd.choice([d for d in streams if cursors[d] < len(streams[d])])
        take = rnd.randint(1, 40)
        chunk = streams[device][cursors[device]:cursors[device] + take]
        cursors[device] += len(chunk)
        sends.append((agents[device], chunk))
    return sends


def lived(streams: dict[str, list[Point]], agents: dict[str, str]) -> list[tuple[str, list[Point]]]:
    """Time order: each minute, each agent ships what it polled."""
    sends = []
    for ts in sorted({p.ts for s in streams.values() for p in s}):
        for agent in ("a", "b"):
            chunk = [p for d, s in streams.items() if agents[d] == agent for p in s if p.ts == ts]
            if chunk:
                sends.append((agent, chunk))
    return sends


_runs = itertools.count()


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=sites(), rnd=st.randoms(use_true_random=False))
# found by the search: loss from 08:13, the root down from 08:19 (the loss ticket folded into the down one):
# the loss must not come back as a ticket of its own while the root is down, whenever that is asked
@example(spec={"root": [(18, 52), (9, 36)], "deps": [{"outages": [(72, 81), (9, 52)], "chained": False,
                                                     "category": "processing"},
                                                    {"outages": [], "chained": False, "category": "business"}],
               "quality": [(3, 16, "loss")], "window": None, "mixed": True}, rnd=random.Random(0))
def test_any_per_device_order_gives_the_same_tickets(agent: AgentFactory, engineer: httpx.Client,
                                                     spec: dict[str, Any], rnd: Any) -> None:
    run = next(_runs)
    results = []
    for mode in ("lived", "shuffled"):
        prefix = f"pb{run}{mode[0]}"
        devices, streams = build(spec, prefix)
        names = {d["name"]: a for a, ds in devices.items() for d in ds}
        clients = {a: agent(f"{prefix}-{a}", ds) for a, ds in devices.items() if ds}
        if spec["window"] is not None:
            a, d = spec["window"]
            r = engineer.post("/api/v1/maintenance", json={
                "devices": [f"{prefix}-r"], "start": (START + a * MINUTE).isoformat(),
                "end": (START + (a + d) * MINUTE).isoformat(), "reason": "planned"})
            assert r.status_code == 201, r.text
        # each agent is heard once before the history: an agent's first batch
        for a, client in clients.items():
            first = [s[0] for d, s in streams.items() if names[d] == a]
            ship(client, f"{prefix}-{a}", first)
        rest = {d: s[1:] for d, s in streams.items()}
        plan = lived(rest, names) if mode == "lived" else shuffled(rest, names, rnd)
        for a, chunk in plan:
            ship(clients[a], f"{prefix}-{a}", chunk)
        settle(engineer)
        rename = {d: d.replace(prefix, "X") for d in names}
        results.append(canonical(tickets_for(engineer, set(names)), rename))
    assert results[0] == results[1], (spec, [r for r in results[0] if r not in results[1]],
                                      [r for r in results[1] if r not in results[0]])

