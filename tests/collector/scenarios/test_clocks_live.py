"""Scenario 14: the SLA clocks of live tickets, with a real acceptance and report by an engineer.

The collector stamps an engineer's action with its own clock, so these faults are lived now (their samples
end at the present minute) rather than replayed from the past. Expectations from contract.md, "Clocks":
level 3 response < 20 min from the fault's start; report "next day" from the acceptance = the end of the
calendar day after it (Asia/Shanghai).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from tests.collector.scenarios.conftest import AgentFactory
from tests.collector.scenarios.replay import (
    CST,
    clock,
    device_entry,
    events,
    reachability,
    replay,
    tickets_of,
    wait_for,
    when,
)

pytestmark = pytest.mark.timeout(180)


def this_minute() -> datetime:
    return datetime.now(CST).replace(second=0, microsecond=0)


def test_14a_accept_at_3_minutes_and_report_meet_their_clocks(agent: AgentFactory,
                                                              engineer: httpx.Client) -> None:
    now = this_minute()
    t0 = now - timedelta(minutes=3)
    http = agent("sc14a", [device_entry("s14-acc", "processing", kind="server")])
    # up for 10 min, then down from t0: samples t0, t0+1, t0+2, t0+3 (= this minute, not in the future)
    replay(http, "sc14a", reachability("s14-acc", t0 - timedelta(minutes=10), now + timedelta(seconds=1),
                                       [(t0, now + timedelta(minutes=5))]))
    found = wait_for(lambda: tickets_of(engineer, "s14-acc"))
    assert len(found) == 1, found
    tid = found[0]["id"]
    assert when(found[0]["opened_at"]) == t0
    r = engineer.post(f"/api/v1/tickets/{tid}/accept", json={"note": "on my way"})
    assert r.status_code == 200, r.text
    r = engineer.post(f"/api/v1/tickets/{tid}/report", json={"note": "reported to the client's IT dept"})
    assert r.status_code == 200, r.text
    t = engineer.get(f"/api/v1/tickets/{tid}").json()
    assert t["state"] == "accepted"
    accepted, reported = when(t["accepted_at"]), when(t["reported_at"])
    assert accepted is not None and reported is not None
    # accepted about 3 min after the start (the test's own runtime on top)
    assert t0 + timedelta(minutes=3) <= accepted < t0 + timedelta(minutes=5)
    # processing 3-5 min down: no row reached -> level 3. Response < 20 min from t0: deadline t0 + 20 min,
    # met at the acceptance
    assert t["level"] == 3
    assert clock(t, "response") == (t0 + timedelta(minutes=20), accepted, False)
    # report "next day" from the acceptance: the end of the day after it
    next_day_end = datetime.combine(accepted.date() + timedelta(days=2), datetime.min.time(), CST)
    assert clock(t, "report") == (next_day_end, reported, False)
    assert [e["actor"] for e in events(t, "accept")] == ["eng-wang"]
    assert [e["note"] for e in events(t, "report")] == ["reported to the client's IT dept"]


def test_14b_nobody_accepts_response_breached_by_the_sweep(agent: AgentFactory,
                                                           engineer: httpx.Client) -> None:
    now = this_minute()
    t1 = now - timedelta(minutes=25)
    http = agent("sc14b", [device_entry("s14-idle", "processing", kind="server")])
    # down since t1 and still down at this minute: an open ticket nobody touches
    replay(http, "sc14b", reachability("s14-idle", t1 - timedelta(minutes=5), now + timedelta(seconds=1),
                                       [(t1, now + timedelta(minutes=5))]))

    def breached() -> dict[str, object] | None:
        got = tickets_of(engineer, "s14-idle")
        return got[0] if got and got[0]["clocks"]["response"]["breached"] else None

    t = wait_for(breached, timeout=20)
    assert t, tickets_of(engineer, "s14-idle")
    assert t["state"] == "open" and t["accepted_at"] is None
    # 25 min down (processing, any hours) < 2 h: level 3; response < 20 min from t1 -> t1 + 20 min, which
    # is 5 min ago: breached, never met
    assert t["level"] == 3
    assert clock(t, "response") == (t1 + timedelta(minutes=20), None, True)
