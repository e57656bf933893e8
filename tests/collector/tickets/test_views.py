"""Ticket JSON: the fields DESIGN.md names, clocks from the contract core, and the full history."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from weibao.collector.contract.calendar_files import load_calendar
from weibao.collector.contract.rules import load_contract_rules
from weibao.collector.tickets import machine as m
from weibao.collector.tickets.views import clocks_by_name, ticket_clocks, ticket_json

CST = ZoneInfo("Asia/Shanghai")
RULES = Path(__file__).resolve().parents[3] / "rules" / "contract.yaml"
# Wednesday 25 Nov 2026, 10:00: an ordinary working day
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=CST)


def test_ticket_json_shape_and_clocks() -> None:
    t = m.open_ticket(ticket_id="20261125-0001", device="core-sw-1", rule="backbone_unreachable", level=3,
                      at=T0, affected=["acc-1", "acc-2"]).ticket
    t = m.promote(t, level=2, at=T0 + timedelta(minutes=5)).ticket
    t = m.accept(t, at=T0 + timedelta(minutes=12), actor="zhang").ticket
    now = T0 + timedelta(minutes=30)
    clocks = ticket_clocks(t, calendar=load_calendar(), limits=load_contract_rules(RULES).clocks, now=now)
    out = ticket_json(t, clocks_by_name(clocks))
    json.dumps(out)  # plain JSON
    for key in ("id", "device", "rule", "level", "state", "opened_at", "accepted_at", "restored_at",
                "reported_at", "closed_at", "clocks", "affected", "events"):
        assert key in out
    assert (out["id"], out["device"], out["level"], out["state"]) == ("20261125-0001", "core-sw-1", 2, "accepted")
    assert out["opened_at"] == "2026-11-25T10:00:00+08:00" and out["restored_at"] is None
    assert out["affected"] == ["acc-1", "acc-2"]
    resp = out["clocks"]["response"]
    # contract.md: the response clock still runs at the promotion (10:05), so it ends at the earlier of its
    # level-3 deadline (10:20) and the promotion plus level 2's 10 min (10:15): met at 10:12
    assert datetime.fromisoformat(resp["deadline"]) == T0 + timedelta(minutes=15)
    assert datetime.fromisoformat(resp["met_at"]) == T0 + timedelta(minutes=12) and resp["breached"] is False
    rest = out["clocks"]["restoration"]
    assert rest["met_at"] is None and rest["breached"] is False
    # nobody was dispatched: the on-site clock has no deadline
    assert out["clocks"]["onsite"] == {"deadline": None, "met_at": None, "breached": False}
    assert set(out["clocks"]) == {"response", "restoration", "report", "onsite"}
    kinds = [(e["kind"], e["actor"], e["from_state"], e["to_state"]) for e in out["events"]]
    assert kinds == [("open", "system", None, "open"), ("promote", "system", "open", "open"),
                     ("accept", "zhang", "open", "accepted")]
    assert out["events"][1]["from_level"] == 3 and out["events"][1]["to_level"] == 2


def test_ticket_json_without_clocks() -> None:
    t = m.open_ticket(ticket_id="x", device="d", rule="r", level=3, at=T0).ticket
    out = ticket_json(t, with_events=False)
    assert out["clocks"]["report"] == {"deadline": None, "met_at": None, "breached": False}
    assert "events" not in out
