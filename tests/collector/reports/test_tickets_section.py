"""Which tickets a report period takes, and as they stood at its end (events after it are not yet)."""

from __future__ import annotations

from pathlib import Path

from tests.collector.scenarios.replay import at
from weibao.collector.contract import load_calendar, load_contract_rules
from weibao.collector.reports import tickets as section
from weibao.collector.state.db import create_state_engine, migrate
from weibao.collector.tickets import machine
from weibao.collector.tickets.store import TicketStore
from weibao.core.packaged import PACKAGED_RULES


def test_a_period_takes_open_and_recent_tickets_as_they_stood_at_its_end(tmp_path: Path) -> None:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    store = TicketStore(engine)
    # old and closed before October: left out
    old = machine.open_ticket(ticket_id="20260801-0001", device="a", rule="down", level=3, at=at("2026-08-01 10:00"))
    old = machine.restore(old.ticket, at=at("2026-08-01 11:00"))
    store.save(machine.close(old.ticket, at=at("2026-08-20 11:00"), actor="client").ticket)
    # opened in August, still open in October: taken (still open)
    long = machine.open_ticket(ticket_id="20260802-0001", device="b", rule="down", level=3, at=at("2026-08-02 10:00"))
    store.save(long.ticket)
    # opened 10-31 23:50 at level 3, promoted to 2 and accepted in November: level 3, open, at October's end
    late = machine.open_ticket(ticket_id="20261031-0001", device="c", rule="down", level=3, at=at("2026-10-31 23:50"))
    late = machine.promote(late.ticket, level=2, at=at("2026-11-01 00:10"))
    store.save(machine.accept(late.ticket, at=at("2026-11-01 00:20"), actor="eng").ticket)
    found = section.load(store, at("2026-10-01 00:00"), at("2026-11-01 00:00"), at("2026-11-01 00:00"))
    assert [t.id for t in found] == ["20260802-0001", "20261031-0001"]
    late_then = found[1]
    assert (late_then.level, late_then.state.value, late_then.accepted_at) == (3, "open", None)
    rules = load_contract_rules(PACKAGED_RULES / "contract.yaml")
    doc = section.section(found, at("2026-10-01 00:00"), at("2026-11-01 00:00"), at("2026-11-01 00:00"),
                          calendar=load_calendar(), limits=rules.clocks)
    assert doc["tickets"]["opened_by_level"] == {"1": 0, "2": 0, "3": 1}
    assert [t["id"] for t in doc["tickets"]["still_open"]] == ["20260802-0001", "20261031-0001"]
    # level 3 response: 20 min from 23:50, due 00:10 and not met at 00:00: pending
    assert doc["clocks"]["response"] == {"met": 0, "breached": 0, "pending": 1, "worst": []}
    engine.dispose()
