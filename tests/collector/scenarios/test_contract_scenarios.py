"""End to end: a history of samples replayed through the real collector opens the tickets contract.md demands.

Every expected level, time and deadline below is worked out by hand from contract.md (the arithmetic is in
the comment next to it). Conventions of the timelines (one sample a minute, Asia/Shanghai):

- an outage [a, b) has up = 0 samples at a, a+1m, ..., b-1m and up = 1 from b on; each sample stands for
  the minute after it, so the fault starts at a, lasts b - a, and service is restored at b (the first good
  sample; contract.yaml asks for 3 good samples in a row before calling it restored, and the replays
  always carry more than 3 after an outage).
- nobody accepts these tickets (actions are stamped by the collector's clock, which is later than any
  replayed history). The contract runs restoration "from the response"; with no response yet, the clock
  cannot start later than the response deadline (a late response must not buy restoration time), so the
  restoration and report clocks below start at the response deadline. Scenario 14 (test_clocks_live.py)
  checks clocks with a real acceptance.
- a ticket opens at level 3 and its clocks start at level 3; at a promotion (contract.md) a clock already met
  or breached keeps its result, a running one ends at the earlier of its deadline and the promotion moment
  plus the new level's limit ("same day" counted from the promotion's day). The response clock (20 min) is
  breached by nobody accepting long before any promotion below, so it stays at start + 20 min.
- 2026 calendar (State Council): 2026-10-01 is a public holiday (Thursday), 2026-10-10 a make-up working
  Saturday, November 2026 has no holiday: 2026-11-17 is a Tuesday, 2026-11-20 a Friday.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.collector.scenarios.conftest import AgentFactory
from tests.collector.scenarios.replay import (
    CST,
    Point,
    at,
    clock,
    device_entry,
    events,
    gap_tickets,
    link_quality,
    reachability,
    replay,
    settled,
    tickets_of,
    wait_for,
    when,
)

pytestmark = pytest.mark.timeout(300)

MIN = timedelta(minutes=1)


def check_clocks(t: dict[str, Any], *, response: datetime, restoration: datetime, report: datetime) -> None:
    """The three deadlines, to the minute (the inputs are whole minutes: equality is exact)."""
    assert clock(t, "response")[0] == response, t["clocks"]
    assert clock(t, "restoration")[0] == restoration, t["clocks"]
    assert clock(t, "report")[0] == report, t["clocks"]


def promotions(t: dict[str, Any]) -> list[tuple[int | None, datetime | None]]:
    return [(e.get("to_level"), when(e.get("at"))) for e in events(t, "promote")]


# --- 1. business outage of 70 minutes on a working morning -> level 2 -----------------------------

def test_01_business_70_minutes_in_working_hours_is_level_2(agent: AgentFactory, engineer: httpx.Client) -> None:
    http = agent("sc01", [device_entry("s01-biz", "business")])
    replay(http, "sc01", reachability("s01-biz", at("2026-11-17 08:40"), at("2026-11-17 10:30"),
                                      [(at("2026-11-17 09:00"), at("2026-11-17 10:10"))]))
    found = settled(engineer, "s01-biz", 1)
    assert len(found) == 1, found  # one episode, one ticket
    t = found[0]
    # Tue 09:00-10:10 = 70 min, all inside 08:30-17:30 of a working day:
    # "in working hours, single >= 1 h" -> level 2 at 09:00 + 1 h = 10:00; single >= 2 h not reached;
    # per day 70 min < 2 h. -> level 2
    assert t["level"] == 2
    assert when(t["opened_at"]) == at("2026-11-17 09:00")
    assert when(t["restored_at"]) == at("2026-11-17 10:10")
    assert promotions(t) == [(2, at("2026-11-17 10:00"))]
    # response: level 3, < 20 min -> 09:20, breached before the promotion: stays 09:20.
    # restoration from 09:20 at level 3: 9 working hours = Tue 09:20-17:30 (8 h 10 min) + Wed 08:30-09:20;
    # running at the 10:00 promotion: min(Wed 09:20, 10:00 + 8 h = 18:00) = Tue 18:00.
    # report from 09:20 at level 3, "next day" = Thu 00:00; at 10:00: min(that, end of Tue) = Wed 00:00
    check_clocks(t, response=at("2026-11-17 09:20"), restoration=at("2026-11-17 18:00"),
                 report=at("2026-11-18 00:00"))
    # restored at 10:10, before 18:00: restoration met
    assert clock(t, "restoration")[1:] == (at("2026-11-17 10:10"), False)


# --- 2. 2 h 5 min -> level 1 ------------------------------------------------------------------------

def test_02_business_2h05_in_working_hours_is_level_1(agent: AgentFactory, engineer: httpx.Client) -> None:
    http = agent("sc02", [device_entry("s02-biz", "business")])
    replay(http, "sc02", reachability("s02-biz", at("2026-11-17 08:40"), at("2026-11-17 11:30"),
                                      [(at("2026-11-17 09:00"), at("2026-11-17 11:05"))]))
    found = settled(engineer, "s02-biz", 1)
    assert len(found) == 1, found
    t = found[0]
    # 09:00-11:05 = 125 min in working hours: single >= 1 h at 10:00 (level 2), >= 2 h at 11:00 (level 1)
    assert t["level"] == 1
    assert promotions(t) == [(2, at("2026-11-17 10:00")), (1, at("2026-11-17 11:00"))]
    assert when(t["restored_at"]) == at("2026-11-17 11:05")
    # response 09:20 (level 3, breached before any promotion). Restoration from 09:20: level 3 Wed 09:20;
    # at 10:00 min(Wed 09:20, 18:00) = 18:00; at 11:00 min(18:00, 11:00 + 4 h) = 15:00.
    # Report from 09:20: level 3 Thu 00:00; at 10:00 end of Tue (Wed 00:00); at 11:00 min(that, 13:00) = 13:00
    check_clocks(t, response=at("2026-11-17 09:20"), restoration=at("2026-11-17 15:00"),
                 report=at("2026-11-17 13:00"))
    assert clock(t, "restoration")[1:] == (at("2026-11-17 11:05"), False)  # 11:05 < 15:00


# --- 3. four 35-minute outages in one working day -> the one that crosses 2 h per day is level 2 -----

def test_03_four_short_outages_sum_to_level_2_per_day(agent: AgentFactory, engineer: httpx.Client) -> None:
    outages = [(at("2026-11-17 09:00"), at("2026-11-17 09:35")), (at("2026-11-17 10:30"), at("2026-11-17 11:05")),
               (at("2026-11-17 13:00"), at("2026-11-17 13:35")), (at("2026-11-17 15:00"), at("2026-11-17 15:35"))]
    http = agent("sc03", [device_entry("s03-biz", "business")])
    replay(http, "sc03", reachability("s03-biz", at("2026-11-17 08:40"), at("2026-11-17 16:00"), outages))
    found = settled(engineer, "s03-biz", 4)
    # reopen_window is 30 min (rules/contract.yaml); the outages are 55 min, 1 h 55 min and 1 h 25 min
    # apart, all > 30 min: four separate episodes -> FOUR tickets
    assert len(found) == 4, [(t["opened_at"], t["level"]) for t in found]
    assert [when(t["opened_at"]) for t in found] == [a for a, _ in outages]
    # per-day working-hours sum: 35, 70, 105 min after the first three (< 2 h: level 3 each, single 35 min
    # < 1 h); the fourth reaches 120 min at 15:00 + 15 min = 15:15 -> level 2 (per day >= 2 h); 140 min < 4 h
    assert [t["level"] for t in found] == [3, 3, 3, 2]
    assert promotions(found[3]) == [(2, at("2026-11-17 15:15"))]
    # level 3: response < 20 min; restoration < 1 working day = 9 working hours from the response
    # deadline; report "next day" = end of the day after.
    # #1 09:00 -> response 09:20; restoration: Tue 09:20-17:30 = 8 h 10 min, 50 min left -> Wed 08:30 + 50 min
    #    = 09:20; report end of Wed 18 = 2026-11-19 00:00
    check_clocks(found[0], response=at("2026-11-17 09:20"), restoration=at("2026-11-18 09:20"),
                 report=at("2026-11-19 00:00"))
    # #2 10:30 -> response 10:50; Tue 10:50-17:30 = 6 h 40 min, 2 h 20 min left -> Wed 10:50
    check_clocks(found[1], response=at("2026-11-17 10:50"), restoration=at("2026-11-18 10:50"),
                 report=at("2026-11-19 00:00"))
    # #3 13:00 -> response 13:20; Tue 13:20-17:30 = 4 h 10 min, 4 h 50 min left -> Wed 13:20
    check_clocks(found[2], response=at("2026-11-17 13:20"), restoration=at("2026-11-18 13:20"),
                 report=at("2026-11-19 00:00"))
    # #4 raised 15:00 at level 3: response 15:20, still running at the 15:15 promotion: min(15:20, 15:15 +
    # 10 min) = 15:20. Restoration and report start at 15:20, after the promotion: at level 2, 15:20 + 8 h
    # = 23:20 and "same day" = end of Tue
    check_clocks(found[3], response=at("2026-11-17 15:20"), restoration=at("2026-11-17 23:20"),
                 report=at("2026-11-18 00:00"))


# --- 4. 3.5 h at night -> level 2 (outside working hours, per day >= 3 h) ---------------------------

def test_04_night_outage_3h30_is_level_2(agent: AgentFactory, engineer: httpx.Client) -> None:
    http = agent("sc04", [device_entry("s04-biz", "business")])
    replay(http, "sc04", reachability("s04-biz", at("2026-11-17 19:40"), at("2026-11-17 23:50"),
                                      [(at("2026-11-17 20:00"), at("2026-11-17 23:30"))]))
    found = settled(engineer, "s04-biz", 1)
    assert len(found) == 1, found
    t = found[0]
    # 20:00-23:30 is after 17:30: 0 working minutes; outside working hours per day 3 h 30 min:
    # >= 3 h at 23:00 -> level 2; >= 6 h not reached
    assert t["level"] == 2
    assert promotions(t) == [(2, at("2026-11-17 23:00"))]
    # response 20:20 (level 3). Restoration from 20:20 at level 3: 9 working hours = Wed 08:30-17:30; at
    # the 23:00 promotion min(Wed 17:30, 23:00 + 8 h) = Wed 07:00. Report from 20:20: level 3 end of Wed;
    # at 23:00 min(that, end of Tue) = Wed 00:00
    check_clocks(t, response=at("2026-11-17 20:20"), restoration=at("2026-11-18 07:00"),
                 report=at("2026-11-18 00:00"))


# --- 5. the same 3.5 h on a public holiday and on a make-up Saturday --------------------------------

def test_05a_holiday_morning_is_not_working_time(agent: AgentFactory, engineer: httpx.Client) -> None:
    http = agent("sc05a", [device_entry("s05-hol", "business")])
    replay(http, "sc05a", reachability("s05-hol", at("2026-10-01 08:40"), at("2026-10-01 12:50"),
                                       [(at("2026-10-01 09:00"), at("2026-10-01 12:30"))]))
    found = settled(engineer, "s05-hol", 1)
    assert len(found) == 1, found
    t = found[0]
    # National Day is not a working day: 09:00-12:30 counts as outside working hours;
    # per day outside working hours >= 3 h at 12:00 -> level 2 (the working-hours rows see nothing)
    assert t["level"] == 2
    assert promotions(t) == [(2, at("2026-10-01 12:00"))]
    # response 09:20 (level 3). Restoration from 09:20 at level 3: no working time until Thu Oct 8 ->
    # Oct 8 17:30; at the 12:00 promotion min(that, 12:00 + 8 h) = Oct 1 20:00. Report: level 3 end of
    # Oct 2; at 12:00 min(that, end of Oct 1) = 2026-10-02 00:00
    check_clocks(t, response=at("2026-10-01 09:20"), restoration=at("2026-10-01 20:00"),
                 report=at("2026-10-02 00:00"))


def test_05b_makeup_saturday_is_working_time(agent: AgentFactory, engineer: httpx.Client) -> None:
    http = agent("sc05b", [device_entry("s05-makeup", "business")])
    replay(http, "sc05b", reachability("s05-makeup", at("2026-10-10 08:40"), at("2026-10-10 12:50"),
                                       [(at("2026-10-10 09:00"), at("2026-10-10 12:30"))]))
    found = settled(engineer, "s05-makeup", 1)
    assert len(found) == 1, found
    t = found[0]
    # Saturday 2026-10-10 is a make-up working day: 09:00-12:30 is working time;
    # single >= 1 h at 10:00 (level 2), >= 2 h at 11:00 (level 1)
    assert t["level"] == 1
    assert promotions(t) == [(2, at("2026-10-10 10:00")), (1, at("2026-10-10 11:00"))]
    # response 09:20 (level 3). Restoration from 09:20: level 3 = Sat 09:20-17:30 (8 h 10 min), Sunday off,
    # Mon Oct 12 08:30 + 50 min; at 10:00 min(that, 18:00) = 18:00; at 11:00 min(18:00, 15:00) = 15:00
    # (restored 12:30: met). Report: level 3 end of Sun; at 10:00 end of Sat; at 11:00 min(that, 13:00)
    check_clocks(t, response=at("2026-10-10 09:20"), restoration=at("2026-10-10 15:00"),
                 report=at("2026-10-10 13:00"))
    assert clock(t, "restoration")[1:] == (at("2026-10-10 12:30"), False)


# --- 6. level 3 on a Friday afternoon: restoration in working hours over the weekend -----------------

def test_06_level_3_friday_restoration_counts_working_hours(agent: AgentFactory,
                                                             engineer: httpx.Client) -> None:
    http = agent("sc06", [device_entry("s06-biz", "business"), device_entry("s06-biz-b", "business")])
    points = [*reachability("s06-biz", at("2026-11-20 15:20"), at("2026-11-20 16:30"),
                            [(at("2026-11-20 16:00"), at("2026-11-20 16:10"))]),
              *reachability("s06-biz-b", at("2026-11-20 15:20"), at("2026-11-20 16:30"),
                            [(at("2026-11-20 15:40"), at("2026-11-20 15:50"))])]
    replay(http, "sc06", points)
    a, b = settled(engineer, "s06-biz", 1), settled(engineer, "s06-biz-b", 1)
    assert len(a) == 1 and len(b) == 1, (a, b)
    # 10 min in working hours: no row of the table reached -> level 3
    assert a[0]["level"] == 3 and b[0]["level"] == 3
    # raised Fri 16:00: response < 20 min -> 16:20. Restoration < 1 working day = 9 working hours from
    # the response (at the latest 16:20): Fri 16:20-17:30 = 1 h 10 min; Sat 21, Sun 22 not working;
    # Mon 23 08:30 + 7 h 50 min = 16:20. Report "next day": end of Sat 21 = 2026-11-22 00:00.
    check_clocks(a[0], response=at("2026-11-20 16:20"), restoration=at("2026-11-23 16:20"),
                 report=at("2026-11-22 00:00"))
    # contract.md's own example, "a clock started Friday 16:00 ends Monday 16:00": a fault raised at
    # 15:40 has its response deadline, hence the restoration start, at 16:00: Fri 16:00-17:30 = 1 h 30 min,
    # Mon 08:30 + 7 h 30 min = 16:00
    check_clocks(b[0], response=at("2026-11-20 16:00"), restoration=at("2026-11-23 16:00"),
                 report=at("2026-11-22 00:00"))


# --- 7. backbone packet loss 35 % for 2 h -> level 2 at 1 h, level 1 at 2 h ------------------------

def test_07_backbone_loss_two_hours_is_level_1(agent: AgentFactory, engineer: httpx.Client) -> None:
    http = agent("sc07", [device_entry("s07-bb", "backbone", kind="router")])
    replay(http, "sc07", link_quality("s07-bb", at("2026-11-18 08:40"), at("2026-11-18 11:20"),
                                      (at("2026-11-18 09:00"), at("2026-11-18 11:00")), loss=35.0, rtt=20.0))
    found = settled(engineer, "s07-bb", 1)
    # up = 1 throughout: no reachability fault, one packet-loss fault
    assert len(found) == 1, found
    t = found[0]
    # loss 35 % >= 30 % sustained 09:00-11:00 (any hours): >= 1 h at 10:00 -> level 2; >= 2 h at 11:00
    # -> level 1 (the last bad burst at 10:59 stands for the minute up to 11:00)
    assert t["level"] == 1
    assert promotions(t) == [(2, at("2026-11-18 10:00")), (1, at("2026-11-18 11:00"))]
    assert when(t["restored_at"]) == at("2026-11-18 11:00")
    # response 09:20 (level 3). Restoration from 09:20: level 3 Thu 09:20; at 10:00 min(that, 18:00) =
    # 18:00; restored at 11:00, the moment of the level-1 promotion: met by then, it keeps 18:00.
    # Report: level 3 end of Thu; at 10:00 end of Wed; at 11:00 min(that, 13:00) = 13:00
    check_clocks(t, response=at("2026-11-18 09:20"), restoration=at("2026-11-18 18:00"),
                 report=at("2026-11-18 13:00"))


# --- 8. provincial latency 450 ms for 65 min -> level 2 --------------------------------------------

def test_08_provincial_latency_65_minutes_is_level_2(agent: AgentFactory, engineer: httpx.Client) -> None:
    http = agent("sc08", [device_entry("s08-prov", "provincial", kind="router")])
    replay(http, "sc08", link_quality("s08-prov", at("2026-11-18 13:40"), at("2026-11-18 15:30"),
                                      (at("2026-11-18 14:00"), at("2026-11-18 15:05")), rtt=450.0))
    found = settled(engineer, "s08-prov", 1)
    assert len(found) == 1, found
    t = found[0]
    # 450 ms >= 400 ms from 14:00 to 15:05: >= 1 h at 15:00 -> level 2; 65 min < 2 h; loss 0 < 15 %
    assert t["level"] == 2
    assert promotions(t) == [(2, at("2026-11-18 15:00"))]
    # response 14:20 (level 3). Restoration from 14:20: level 3 = Wed 14:20-17:30 (3 h 10 min) + Thu 08:30 +
    # 5 h 50 min = Thu 14:20; at 15:00 min(that, 23:00) = Wed 23:00. Report: level 3 end of Thu; at 15:00
    # end of Wed = 2026-11-19 00:00
    check_clocks(t, response=at("2026-11-18 14:20"), restoration=at("2026-11-18 23:00"),
                 report=at("2026-11-19 00:00"))


# --- 9. business processing: 12 h in a month -> level 2 on the episode that crosses 12 h -------------

def test_09_processing_twelve_hours_in_a_month_is_level_2(agent: AgentFactory,
                                                           engineer: httpx.Client) -> None:
    days = [at(f"2026-11-{d:02d} 10:00") for d in range(2, 14)]  # Nov 2 .. Nov 13: twelve days
    outages = [(d, d + timedelta(hours=1)) for d in days]
    http = agent("sc09", [device_entry("s09-proc", "processing", kind="server")])
    # one `up` sample a minute without a break from Nov 2 09:30 to Nov 13 11:30: no monitoring gap
    points = [Point(p.ts, p.device, up=p.up) for p in
              reachability("s09-proc", at("2026-11-02 09:30"), at("2026-11-13 11:30"), outages)]
    replay(http, "sc09", points)
    found = settled(engineer, "s09-proc", 12, timeout=60)
    # outages 23 h apart (> 30 min re-open window): twelve episodes, twelve tickets
    assert len(found) == 12, [(t["opened_at"], t["level"]) for t in found]
    assert [when(t["opened_at"]) for t in found] == days
    # each 1 h: single < 2 h, per day < 4 h; per month 1, 2, ..., 11 h after the first eleven (level 3);
    # the twelfth reaches 12 h at Nov 13 11:00 -> level 2 (per month >= 12 h); 12 h < 24 h
    assert [t["level"] for t in found] == [3] * 11 + [2]
    assert promotions(found[11]) == [(2, at("2026-11-13 11:00"))]
    # twelfth, raised Fri Nov 13 10:00 at level 3: response 10:20. Restoration from 10:20: level 3 = Fri
    # 10:20-17:30 (7 h 10 min), Mon Nov 16 08:30 + 1 h 50 min = 10:20; restored at 11:00, the moment of the
    # promotion: met by then, it keeps Mon 10:20. Report: level 3 end of Sat; at 11:00 end of Fri
    check_clocks(found[11], response=at("2026-11-13 10:20"), restoration=at("2026-11-16 10:20"),
                 report=at("2026-11-14 00:00"))
    # first, level 3 from Mon Nov 2 10:00: response 10:20; 9 working hours from 10:20 -> Mon 10:20-17:30
    # = 7 h 10 min, 1 h 50 min left -> Tue Nov 3 10:20; report end of Nov 3 = 2026-11-04 00:00
    check_clocks(found[0], response=at("2026-11-02 10:20"), restoration=at("2026-11-03 10:20"),
                 report=at("2026-11-04 00:00"))
    # the replay had no silent stretch: no monitoring-gap ticket inside it
    inside = [g for g in gap_tickets(engineer, "s09-proc")
              if when(g["opened_at"]) is not None and when(g["opened_at"]) < at("2026-11-13 11:29")]  # type: ignore[operator]
    assert inside == []


# --- 10. an upstream down with 20 dependents -> one ticket listing them ------------------------------

def test_10_upstream_down_opens_one_ticket_for_twenty_dependents(agent: AgentFactory,
                                                                 engineer: httpx.Client) -> None:
    deps = [f"s10-acc-{i:02d}" for i in range(1, 21)]
    http = agent("sc10", [device_entry("s10-core", "backbone"),
                          *[device_entry(d, "business", depends_on="s10-core") for d in deps]])
    outage = [(at("2026-11-18 09:00"), at("2026-11-18 09:30"))]
    points = reachability("s10-core", at("2026-11-18 08:40"), at("2026-11-18 09:50"), outage)
    for d in deps:
        points += reachability(d, at("2026-11-18 08:40"), at("2026-11-18 09:50"), outage)
    replay(http, "sc10", points)
    found = settled(engineer, "s10-core", 1)
    assert len(found) == 1, found
    t = found[0]
    # the dependents went down with their upstream (within 2 min): one root cause, one ticket
    assert sorted(t["affected"]) == deps
    for d in deps:
        assert tickets_of(engineer, d) == [], d
    # backbone core node unreachable 30 min < 1 h -> level 3; from 09:00: response 09:20; restoration
    # Wed 09:20-17:30 = 8 h 10 min + 50 min -> Thu 09:20; report end of Thu 19 = 2026-11-20 00:00
    assert t["level"] == 3
    check_clocks(t, response=at("2026-11-18 09:20"), restoration=at("2026-11-19 09:20"),
                 report=at("2026-11-20 00:00"))


# --- 11. a planned maintenance window -> no ticket ------------------------------------------------

def test_11_maintenance_window_opens_no_ticket(agent: AgentFactory, engineer: httpx.Client) -> None:
    window = {"devices": ["s11-biz"], "start": at("2026-11-18 08:30").isoformat(),
              "end": at("2026-11-18 11:00").isoformat(), "reason": "firmware upgrade"}
    r = engineer.post("/api/v1/maintenance", json=window)
    assert r.status_code in (200, 201), r.text
    listed = engineer.get("/api/v1/maintenance")
    assert listed.status_code == 200, listed.text
    assert "s11-biz" in listed.text
    http = agent("sc11", [device_entry("s11-biz", "business"), device_entry("s11-ctl", "business")])
    # the planned device is down 09:00-10:30, inside its window; a control device outside any window is
    # down 09:00-09:20 in the same batches, so its ticket shows the batches were evaluated
    points = [*reachability("s11-biz", at("2026-11-18 08:40"), at("2026-11-18 11:30"),
                            [(at("2026-11-18 09:00"), at("2026-11-18 10:30"))]),
              *reachability("s11-ctl", at("2026-11-18 08:40"), at("2026-11-18 11:30"),
                            [(at("2026-11-18 09:00"), at("2026-11-18 09:20"))])]
    replay(http, "sc11", points)
    ctl = settled(engineer, "s11-ctl", 1)
    assert len(ctl) == 1 and ctl[0]["level"] == 3, ctl
    assert tickets_of(engineer, "s11-biz") == []


# --- 12. flapping within the re-open window -> one ticket ------------------------------------------

def test_12_flapping_reopens_the_same_ticket(agent: AgentFactory, engineer: httpx.Client) -> None:
    http = agent("sc12", [device_entry("s12-biz", "business")])
    replay(http, "sc12", reachability("s12-biz", at("2026-11-18 08:40"), at("2026-11-18 10:00"),
                                      [(at("2026-11-18 09:00"), at("2026-11-18 09:10")),
                                       (at("2026-11-18 09:20"), at("2026-11-18 09:30"))]))
    found = settled(engineer, "s12-biz", 1)
    # restored at 09:10 (10 good samples), down again at 09:20: 10 min <= 30 min re-open window -> the
    # same ticket re-opens
    assert len(found) == 1, found
    t = found[0]
    assert len(events(t, "reopen")) == 1
    assert when(t["opened_at"]) == at("2026-11-18 09:00")
    assert when(t["restored_at"]) == at("2026-11-18 09:30")
    # 20 min down in working hours: level 3; response 09:20; restoration Thu 09:20; report 2026-11-20 00:00
    assert t["level"] == 3
    check_clocks(t, response=at("2026-11-18 09:20"), restoration=at("2026-11-19 09:20"),
                 report=at("2026-11-20 00:00"))


# --- 13. an agent that goes silent: a monitoring gap, not an outage ---------------------------------

def test_13a_silence_in_replayed_history_is_not_an_outage(agent: AgentFactory, engineer: httpx.Client) -> None:
    http = agent("sc13a", [device_entry("s13-biz", "business"), device_entry("s13-ctl", "business")])
    replay(http, "sc13a", reachability("s13-biz", at("2026-11-18 08:40"), at("2026-11-18 10:01"), []))
    # no sample 10:01-11:59: 2 h without data > 3 probe intervals (3 min) -> unknown time, not down
    replay(http, "sc13a", reachability("s13-biz", at("2026-11-18 12:00"), at("2026-11-18 12:20"), []))
    # a control device of the same agent with a real outage shows the batches were evaluated
    replay(http, "sc13a", reachability("s13-ctl", at("2026-11-18 12:00"), at("2026-11-18 12:20"),
                                       [(at("2026-11-18 12:05"), at("2026-11-18 12:10"))]))
    assert len(settled(engineer, "s13-ctl", 1)) == 1
    # no sample said down: no fault ticket for the device
    assert tickets_of(engineer, "s13-biz") == []
    # but the silence is a monitoring gap (contract.yaml: no sample for more than 3 probe intervals), found
    # after the fact: the last sample (10:00) stands for one probe interval, so the unknown time runs from
    # 10:01 (the gap is due by 10:03) until data flows again at 12:00. (The ticket may be the device's or
    # its agent's, listing the device.)
    gaps = gap_tickets(engineer, "s13-biz")
    assert len(gaps) == 1, gaps
    opened = when(gaps[0]["opened_at"])
    assert opened is not None and at("2026-11-18 10:00") < opened <= at("2026-11-18 10:04"), gaps[0]["opened_at"]
    assert when(gaps[0]["restored_at"]) == at("2026-11-18 12:00")


def test_13b_live_silent_agent_opens_a_gap_ticket_not_an_outage(agent: AgentFactory,
                                                                 engineer: httpx.Client) -> None:
    probe = timedelta(seconds=5)
    http = agent("sc13b", [device_entry("s13-live", "business", probe_s=5.0)])
    now = datetime.now(CST).replace(microsecond=0)
    # up every 5 s for the last minute, then nothing: more than 3 probe intervals (15 s) is a gap
    replay(http, "sc13b", reachability("s13-live", now - timedelta(minutes=1), now + timedelta(seconds=1), [],
                                       step=probe))
    last = now
    gaps = wait_for(lambda: gap_tickets(engineer, "s13-live"), timeout=40)
    assert len(gaps) == 1, gaps
    g = gaps[0]
    # the last sample stands for one probe interval; the gap is known once 3 intervals passed without data
    opened = when(g["opened_at"])
    assert opened is not None and last <= opened <= last + 4 * probe, (g["opened_at"], last)
    assert g["state"] in ("open", "accepted")
    # samples again, live, one per probe interval: the gap ends, and no sample ever said down
    closed: list[dict[str, Any]] = []
    for _ in range(6):
        t = datetime.now(CST).replace(microsecond=0)
        replay(http, "sc13b", [Point(t, "s13-live", up=1.0, loss=0.0, rtt=1.0)])
        closed = wait_for(lambda: [t for t in gap_tickets(engineer, "s13-live") if t["state"] == "restored"],
                          timeout=probe.total_seconds())
        if closed:
            break
    assert closed, gap_tickets(engineer, "s13-live")
    assert tickets_of(engineer, "s13-live") == []
