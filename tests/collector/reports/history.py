"""A hand-made October 2026 of three devices, replayed through ``POST /api/v1/ingest`` in stages, with the
engineers' actions written at the times they happened (the API stamps actions with the present).

Every device is probed every 5 minutes (samples at :00, :05, ...), from 2026-10-01 00:00 to 10-31 23:55,
Asia/Shanghai. What happens (W = inside working hours 08:30-17:30 of a working day):

- rp-biz (business): down 10-05 09:00-09:40 (National Day holiday: not W) -> T0, level 3, nobody acts;
  down 10-13 (Tue) 16:30-18:00 (16:30-17:30 W) -> T1, level 2 from 17:30 (1 h of working time),
  accepted 16:34, reported 17:00; down 10-17 (Sat) 02:00-03:00 -> T2, level 3, accepted late at 02:30.
  cpu.util_pct 20 all month, 90 in 10-13 16:30-18:00.
- rp-core (backbone): down 10-10 (Saturday, a make-up working day) 09:00-09:30 (W) -> T5, level 3,
  accepted 09:50 (late), reported 10:00; down 10-22 (Thu) 20:00-22:30 -> T3, level 2 at 21:00, level 1
  at 22:00, accepted 20:03, reported 22:20 (late); maintenance window 10-25 (Sun) 01:00-03:00 with up = 0
  from 01:00 to 02:00 (no ticket); config_changed on 10-09 14:00 (+3 / -1 lines).
- rp-mis (mis): no samples from 10-14 (Wed) 12:00 to 16:00 (the last sample at 11:55 vouches for one
  probe interval, to 12:00) -> the agent's gap ticket G, level 3; down 10-31 (Sat) 10:00-11:00 -> T4,
  level 3, nobody acts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.collector.scenarios.replay import at, device_entry, wait_for
from weibao.collector.state.db import create_state_engine
from weibao.collector.tickets import machine
from weibao.collector.tickets.ops import TicketOps
from weibao.collector.tickets.store import TicketStore

AGENT = "rep-agent"
STEP = timedelta(minutes=5)
START, END = at("2026-10-01 00:00"), at("2026-11-01 00:00")
DEVICES = [device_entry("rp-biz", "business", kind="server", probe_s=300),
           device_entry("rp-core", "backbone", kind="router", probe_s=300),
           device_entry("rp-mis", "mis", kind="server", probe_s=300)]
DOWN = {
    "rp-biz": [(at("2026-10-05 09:00"), at("2026-10-05 09:40")), (at("2026-10-13 16:30"), at("2026-10-13 18:00")),
               (at("2026-10-17 02:00"), at("2026-10-17 03:00"))],
    "rp-core": [(at("2026-10-10 09:00"), at("2026-10-10 09:30")), (at("2026-10-22 20:00"), at("2026-10-22 22:30")),
                (at("2026-10-25 01:00"), at("2026-10-25 02:00"))],
    "rp-mis": [(at("2026-10-31 10:00"), at("2026-10-31 11:00"))],
}
SILENT = {"rp-mis": (at("2026-10-14 11:56"), at("2026-10-14 16:00"))}
HOT = (at("2026-10-13 16:30"), at("2026-10-13 18:00"))
WINDOW = {"devices": ["rp-core"], "start": "2026-10-25T01:00:00+08:00", "end": "2026-10-25T03:00:00+08:00",
          "reason": "core router firmware upgrade"}
CONFIG_EVENT = {"device": "rp-core", "kind": "config_changed", "ts": "2026-10-09T14:00:00+08:00",
                "data": {"added": 3, "removed": 1}}


def samples() -> list[dict[str, Any]]:
    out = []
    t = START
    while t < END:
        for name, spans in DOWN.items():
            gap = SILENT.get(name)
            if gap is not None and gap[0] <= t < gap[1]:
                continue
            up = 0.0 if any(a <= t < b for a, b in spans) else 1.0
            out.append({"device": name, "metric": "up", "value": up, "ts": t.isoformat(), "labels": {}})
            if name == "rp-biz":
                cpu = 90.0 if HOT[0] <= t < HOT[1] else 20.0
                out.append({"device": name, "metric": "cpu.util_pct", "value": cpu, "ts": t.isoformat(),
                            "labels": {}})
        t += STEP
    return out


class Replay:
    """Sends the month in time order, up to a moment at a time, and acts on tickets at past times."""

    def __init__(self, agent: httpx.Client, engineer: httpx.Client, data_dir: Path) -> None:
        self.agent = agent
        self.engineer = engineer
        self.pending: Iterator[dict[str, Any]] = iter(samples())
        self.held: dict[str, Any] | None = None
        self.engine = create_state_engine(f"sqlite:///{(data_dir / 'state.db').resolve()}")
        self.ops = TicketOps(TicketStore(self.engine))

    def until(self, moment: datetime) -> None:
        """Send every sample stamped before ``moment`` (batches of at most 5,000), then wait for the engine."""
        batch: list[dict[str, Any]] = []
        while True:
            s = self.held if self.held is not None else next(self.pending, None)
            self.held = None
            if s is None:
                break
            if datetime.fromisoformat(s["ts"]) >= moment:
                self.held = s
                break
            batch.append(s)
            if len(batch) >= 5000:
                self.send(batch)
                batch = []
        if batch:
            self.send(batch)
        self.drained()

    def send(self, batch: list[dict[str, Any]], events: list[dict[str, Any]] | None = None) -> None:
        r = self.agent.post("/api/v1/ingest", json={"batch_id": str(uuid.uuid4()), "agent": AGENT,
                                                    "samples": batch, "events": events or []})
        assert r.status_code == 200, r.text

    def drained(self) -> None:
        def idle() -> bool:
            a = self.engineer.get("/api/v1/contract").json()
            b = self.engineer.get("/api/v1/contract").json()
            return bool(a["queued"] == 0 == b["queued"] and a["batches_processed"] == b["batches_processed"])

        assert wait_for(idle, timeout=60), "the contract engine did not drain"

    def ticket(self, device: str, opened: str, *, state: str | None = None, level: int | None = None) -> str:
        """The id of the device's ticket opened at ``opened``, once it is in ``state`` / at ``level``."""
        when = at(opened)

        def find() -> str | None:
            for t in self.engineer.get("/api/v1/tickets", params={"device": device, "limit": 100}).json()["tickets"]:
                if (datetime.fromisoformat(t["opened_at"]) == when and (state is None or t["state"] == state)
                        and (level is None or t["level"] == level)):
                    return str(t["id"])
            return None

        found = wait_for(find, timeout=30)
        assert found, f"no ticket of {device} opened at {opened} (state {state}, level {level})"
        return str(found)

    def accept(self, ticket_id: str, when: str) -> None:
        done = self.ops.change(ticket_id, lambda t: machine.accept(t, at=at(when), actor="eng-li", note="on it"))
        assert done is not None

    def report(self, ticket_id: str, when: str) -> None:
        done = self.ops.change(ticket_id, lambda t: machine.report(t, at=at(when), actor="eng-li",
                                                                   note="reported to the client"))
        assert done is not None

    def close(self) -> None:
        self.engine.dispose()


def replay_october(agent: httpx.Client, engineer: httpx.Client, data_dir: Path) -> dict[str, str]:
    """The whole month, with the engineers' actions; returns the ticket ids by name (T0..T5, G)."""
    r = engineer.post("/api/v1/maintenance", json=WINDOW)
    assert r.status_code == 201, r.text
    rp = Replay(agent, engineer, data_dir)
    ids: dict[str, str] = {}
    try:
        rp.until(at("2026-10-09 14:05"))
        rp.send([], [CONFIG_EVENT])
        rp.until(at("2026-10-10 09:45"))  # the third good sample (09:40) restores T5 at 09:30
        ids["T0"] = rp.ticket("rp-biz", "2026-10-05 09:00", state="restored")
        ids["T5"] = rp.ticket("rp-core", "2026-10-10 09:00", state="restored")
        rp.accept(ids["T5"], "2026-10-10 09:50")
        rp.report(ids["T5"], "2026-10-10 10:00")
        rp.until(at("2026-10-13 16:35"))
        ids["T1"] = rp.ticket("rp-biz", "2026-10-13 16:30", state="open")
        rp.accept(ids["T1"], "2026-10-13 16:34")
        rp.report(ids["T1"], "2026-10-13 17:00")
        rp.until(at("2026-10-17 02:35"))
        ids["T2"] = rp.ticket("rp-biz", "2026-10-17 02:00", state="open")
        rp.accept(ids["T2"], "2026-10-17 02:30")
        rp.until(at("2026-10-22 20:05"))
        ids["T3"] = rp.ticket("rp-core", "2026-10-22 20:00", state="open")
        rp.accept(ids["T3"], "2026-10-22 20:03")
        rp.until(at("2026-10-22 22:05"))
        rp.ticket("rp-core", "2026-10-22 20:00", level=1)  # promoted before the report is written
        rp.report(ids["T3"], "2026-10-22 22:20")
        rp.until(END)
        ids["T4"] = rp.ticket("rp-mis", "2026-10-31 10:00", state="restored")
        ids["G"] = rp.ticket(AGENT, "2026-10-14 12:00")
        # the sweep closes T2 (restored 10-17 03:00) once the engine's clock passed 10-31 03:00
        rp.ticket("rp-biz", "2026-10-17 02:00", state="closed")
    finally:
        rp.close()
    return ids
