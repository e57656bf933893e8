"""Fixtures for the engine's unit tests: a real SQLite ticket store, the shipped rules, the real evaluator."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from weibao.collector.contract import DeviceSpec, Evaluator, load_calendar, load_contract_rules
from weibao.collector.engine.extras import Extras
from weibao.collector.engine.setup import DeviceBook, depths
from weibao.collector.engine.signals import FaultSync
from weibao.collector.engine.sweep import Sweeper
from weibao.collector.notify.model import Notification
from weibao.collector.state.db import create_state_engine, migrate
from weibao.collector.tickets.model import Ticket
from weibao.collector.tickets.ops import TicketOps
from weibao.collector.tickets.store import TicketStore
from weibao.core.inspection.rules import ThresholdCheck, load_inspection_rules
from weibao.core.inventory import Category
from weibao.core.model import Sample

CST = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parents[3]
RULES = load_contract_rules(REPO / "rules" / "contract.yaml")
CALENDAR = load_calendar()
CHECKS = tuple(c for c in load_inspection_rules(REPO / "rules" / "inspection.yaml").checks
               if isinstance(c, ThresholdCheck))
AGENT = "site-a"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CST)


@dataclass
class World:
    """The engine's parts around one evaluator, minus the thread: feed samples, read tickets."""

    store: TicketStore
    ops: TicketOps
    sync: FaultSync
    sweeper: Sweeper
    extras: Extras
    ev: Evaluator
    book: DeviceBook
    notes: list[Notification] = field(default_factory=list)

    def feed(self, device: str, metric: str, value: float, ts: datetime) -> None:
        s = Sample(device, metric, value, ts)
        self.sync.handle(self.ev.observe(s), self.ev, self.book, ts)

    def series(self, device: str, values: Sequence[float], start: datetime, step: timedelta = timedelta(seconds=60),
               metric: str = "up") -> datetime:
        """Feed ``values`` one step apart from ``start``; returns the time after the last one."""
        t = start
        for v in values:
            self.feed(device, metric, v, t)
            t += step
        return t

    def tickets(self, device: str | None = None) -> list[Ticket]:
        return self.store.find(device=device)

    def sweep(self, now: datetime) -> None:
        self.sweeper.run(self.ev, self.book, now)
        self.sweeper.alert(now)


def make_world(tmp: Path, specs: list[DeviceSpec], kinds: dict[str, str] | None = None) -> World:
    engine = create_state_engine(f"sqlite:///{tmp / 'state.db'}")
    migrate(engine)  # the schema the collector runs on
    store = TicketStore(engine)
    notes: list[Notification] = []
    ops = TicketOps(store, notes.append)
    sync = FaultSync(ops, RULES, CALENDAR)
    by_name = {s.name: s for s in specs}
    book = DeviceBook(by_name, kinds or {s.name: "switch" for s in specs}, {s.name: AGENT for s in specs},
                      (len(specs), 0), depths(by_name))
    ev = Evaluator(RULES, specs)
    extras = Extras(ops, CHECKS, RULES.inspection_danger_after, RULES.evaluation.reopen_window)
    return World(store, ops, sync, Sweeper(ops, sync, RULES, CALENDAR), extras, ev, book, notes)


MINUTE = timedelta(seconds=60)
DEVICES = [
    DeviceSpec("core-1", Category.BACKBONE, None, MINUTE),
    DeviceSpec("acc-1", Category.BACKBONE, "core-1", MINUTE),
    DeviceSpec("acc-2", Category.BACKBONE, "core-1", MINUTE),
    DeviceSpec("biz-1", Category.BUSINESS, None, MINUTE),
    DeviceSpec("ups-1", Category.BUSINESS, None, MINUTE),
]


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[World]:
    kinds = {d.name: ("ups" if d.name.startswith("ups") else "switch") for d in DEVICES}
    w = make_world(tmp_path, DEVICES, kinds)
    yield w
    w.store.engine.dispose()
